package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/retry"
)

// fleet is a set of real loopback HTTP servers, each counting its hits.
type fleet struct {
	servers []*httptest.Server
	hits    []*atomic.Int64
	client  *http.Client
}

// newFleet starts one server per handler.
func newFleet(t *testing.T, handlers ...http.HandlerFunc) *fleet {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	f := &fleet{client: &http.Client{Transport: tr}}
	for _, h := range handlers {
		n := new(atomic.Int64)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			h(w, r)
		}))
		f.servers = append(f.servers, srv)
		f.hits = append(f.hits, n)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		for _, srv := range f.servers {
			srv.Close()
		}
	})
	return f
}

// instances returns the fleet's servers as instances, versions[i] (if
// given) as the version of server i.
func (f *fleet) instances(versions ...string) []discovery.Instance {
	out := make([]discovery.Instance, len(f.servers))
	for i, srv := range f.servers {
		out[i] = discovery.Instance{Addr: strings.TrimPrefix(srv.URL, "http://")}
		if i < len(versions) {
			out[i].Version = versions[i]
		}
	}
	return out
}

// get is a call of bulwark.Do: a GET to the endpoint picked, whose status
// 5xx and 429 are errors (so Failures).
func (f *fleet) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+bulwark.EndpointOf(ctx)+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if bulwark.ClassifyHTTPStatus(resp.StatusCode) == bulwark.Failure {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(body), err
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }

// slow answers after d: the latency of a slow instance, not a wait for
// anything.
func slow(d time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	}
}

func status503(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }

func TestOverHTTPTheSlowInstanceGetsLessTraffic(t *testing.T) {
	f := newFleet(t, ok, ok, slow(50*time.Millisecond))
	b := mustBalancer(t, mustStatic(t, f.instances()), discovery.BalancerConfig{})
	s, err := bulwark.New(bulwark.Config{Picker: b})
	if err != nil {
		t.Fatal(err)
	}
	const calls = 200
	for range calls {
		if _, err := bulwark.Do(context.Background(), s, "svc", f.get); err != nil {
			t.Fatal(err)
		}
	}
	fast0, fast1, slowHits := f.hits[0].Load(), f.hits[1].Load(), f.hits[2].Load()
	// Each fast instance gets a share, not necessarily half: on a busy
	// machine a fast instance that stalls once looks slow for a while.
	if slowHits*10 > calls || fast0 < calls/10 || fast1 < calls/10 {
		t.Fatalf("hits: fast %d and %d, slow %d; want under 10%% on the slow one, at least 10%% on each fast one", fast0, fast1, slowHits)
	}
	if st := status(t, b, strings.TrimPrefix(f.servers[2].URL, "http://")); st.Latency < 10*time.Millisecond {
		t.Fatalf("slow instance's estimate: %v, want about 50ms", st.Latency)
	}
}

func TestOverHTTPARetryGoesToAnotherInstance(t *testing.T) {
	f := newFleet(t, status503, ok)
	set := f.instances()
	b := mustBalancer(t, mustStatic(t, set), discovery.BalancerConfig{Policy: discovery.RoundRobin})
	r, err := retry.New(retry.Config{MaxAttempts: 2, Backoff: retry.Constant(0)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := bulwark.New(bulwark.Config{Picker: b, Retry: r, Idempotent: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		var endpoints []string
		_, err := bulwark.Do(context.Background(), s, "svc", func(ctx context.Context) (string, error) {
			endpoints = append(endpoints, bulwark.EndpointOf(ctx))
			return f.get(ctx)
		})
		if err != nil {
			t.Fatalf("call %d: %v (endpoints %v), want the retry to succeed elsewhere", i, err, endpoints)
		}
		if len(endpoints) == 2 && (endpoints[0] != set[0].Addr || endpoints[1] != set[1].Addr) {
			t.Fatalf("call %d went to %v, want the retry away from the failing %s", i, endpoints, set[0].Addr)
		}
	}
	// Five 503s in a row ejected the failing instance.
	if st := status(t, b, set[0].Addr); !st.Ejected {
		t.Fatalf("failing instance: %+v, want ejected", st)
	}
	if n := f.hits[0].Load(); n != 5 {
		t.Fatalf("hits on the failing instance: %d, want 5 (then ejected)", n)
	}
}

func TestOverHTTPOnlyCompatibleVersionsAreCalled(t *testing.T) {
	f := newFleet(t, ok, ok, ok, ok)
	b := mustBalancer(t, mustStatic(t, f.instances("1.9.0", "2.0.0", "2.4.1", "")), discovery.BalancerConfig{RequireVersion: "2.1"})
	s, err := bulwark.New(bulwark.Config{Picker: b})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := bulwark.Do(context.Background(), s, "svc", f.get); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []bool{false, false, true, false} {
		if got := f.hits[i].Load() > 0; got != want {
			t.Errorf("server %d called: %v, want %v", i, got, want)
		}
	}
}

func TestOverHTTPARefusalDoesNotWaitForTheDeadline(t *testing.T) {
	f := newFleet(t, ok)
	b := mustBalancer(t, mustStatic(t, f.instances("1.0.0")), discovery.BalancerConfig{RequireVersion: "2"})
	s, err := bulwark.New(bulwark.Config{Picker: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err = bulwark.Do(ctx, s, "svc", f.get)
	if !errors.Is(err, discovery.ErrNoInstance) || ctx.Err() != nil {
		t.Fatalf("Do: got %v (context %v), want ErrNoInstance before the deadline", err, ctx.Err())
	}
	if n := f.hits[0].Load(); n != 0 {
		t.Fatalf("hits on the incompatible instance: %d, want 0", n)
	}
}
