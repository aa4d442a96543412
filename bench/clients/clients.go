package clients

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/bulwarkrpc/bulwark/bench/load"
	"github.com/bulwarkrpc/bulwark/httpclient"
)

// Transport is the protocol a client speaks.
type Transport string

// The transports.
const (
	HTTP Transport = "http"
	GRPC Transport = "grpc"
)

// Endpoints are the addresses of the fleet a client calls.
type Endpoints struct {
	// HTTP holds the base URLs of the HTTP endpoints, by index.
	HTTP []string
	// GRPC holds the host:port of the gRPC endpoints, by index.
	GRPC []string
}

// Client sends requests. Its methods are safe for concurrent use.
type Client interface {
	// Call sends one request for key to the endpoint of that index, as
	// DNS round robin would hand endpoints out; a client that balances
	// by itself (Spec.Balances) may send it elsewhere. It returns once
	// the whole answer is read.
	Call(ctx context.Context, endpoint int, key string) load.Outcome
	// Close releases the client's connections.
	Close() error
}

// Breakers is implemented by a client with circuit breakers.
type Breakers interface {
	// Breakers returns how many of its breakers are open and how many
	// half-open now.
	Breakers() (open, halfOpen int)
}

// FanOuter is implemented by a client with a fan-out of its own; the
// others fan out with plain goroutines.
type FanOuter interface {
	// FanOut sends key to endpoints 0 to n-1 at once and returns a
	// Success when all but at most one answered by ctx's deadline.
	FanOut(ctx context.Context, n int, key string) load.Outcome
}

// Spec describes a client and builds it.
type Spec struct {
	// Name identifies the client on the command line and in reports.
	Name string
	// Transport is what it speaks.
	Transport Transport
	// Bulwark marks bulwark's own clients: the ones the targets apply to.
	Bulwark bool
	// Balances says the client chooses endpoints by itself.
	Balances bool
	// Config says how it is configured, and why, for the report.
	Config string
	// New builds the client for a fleet; attempts counts every attempt
	// it puts on the wire.
	New func(e Endpoints, attempts *atomic.Int64) (Client, error)
}

// Specs returns every client, HTTP first.
func Specs() []Spec {
	return []Spec{
		naiveSpec(),
		retryablehttpSpec(),
		failsafeSpec(),
		hystrixSpec(),
		bulwarkHTTPSpec(),
		grpcGoSpec(),
		bulwarkGRPCSpec(),
	}
}

// Lookup returns the specs of the given names, in the given order, or an
// error naming the first unknown one and listing the known ones.
func Lookup(names []string) ([]Spec, error) {
	all := Specs()
	var out []Spec
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Spec) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown client %q (known: %s)", n, strings.Join(Names(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// Names returns the name of every client.
func Names() []string {
	var names []string
	for _, s := range Specs() {
		names = append(names, s.Name)
	}
	return names
}

// counting counts the attempts that go through it: the innermost
// RoundTripper of every HTTP client.
type counting struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func (c *counting) CloseIdleConnections() {
	if ci, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// baseTransport is what every HTTP client starts from, each its own:
// http.DefaultTransport's settings, counted.
func baseTransport(attempts *atomic.Int64) *counting {
	return &counting{next: http.DefaultTransport.(*http.Transport).Clone(), n: attempts}
}

// fallbackHeader marks a response answered from a cache in place of a
// failure.
const fallbackHeader = httpclient.FallbackHeader

// itemURL is the URL of key on the endpoint at base.
func itemURL(base, key string) string { return base + "/item/" + key }

// get sends a GET with c and reads the whole answer.
func get(ctx context.Context, c *http.Client, url string) load.Outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return load.Failure
	}
	resp, err := c.Do(req)
	if err != nil {
		return load.Failure
	}
	return read(resp)
}

// read reads and closes an answer and classifies it: a 200 read to the
// end is a Success (a Fallback when served from a cache); anything else
// is a Failure.
func read(resp *http.Response) load.Outcome {
	_, err := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	switch {
	case err != nil || resp.StatusCode != http.StatusOK:
		return load.Failure
	case resp.Header.Get(fallbackHeader) != "":
		return load.Fallback
	}
	return load.Success
}

// pick returns the URL of key on endpoint i.
func pick(urls []string, i int, key string) string {
	return itemURL(urls[i%len(urls)], key)
}
