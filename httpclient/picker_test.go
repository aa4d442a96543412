package httpclient_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/httpclient"
)

// roundRobin is a Picker double over fixed addresses that avoids the
// address it is told to, and counts the outcomes reported to it.
type roundRobin struct {
	addrs    []string
	next     atomic.Int32
	mu       sync.Mutex
	outcomes map[string][]bulwark.Outcome
}

func (p *roundRobin) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	_, pm, err := p.Pick(ctx, key, "")
	return pm, err
}

func (p *roundRobin) Pick(_ context.Context, _, avoid string) (string, bulwark.Permit, error) {
	for range len(p.addrs) {
		a := p.addrs[int(p.next.Add(1)-1)%len(p.addrs)]
		if a != avoid {
			return a, bulwark.NewPermit(p, a, 0), nil
		}
	}
	return "", bulwark.Permit{}, bulwark.ErrNoEndpoint
}

func (p *roundRobin) Release(pm bulwark.Permit, o bulwark.Outcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outcomes == nil {
		p.outcomes = map[string][]bulwark.Outcome{}
	}
	a := pm.Ref().(string)
	p.outcomes[a] = append(p.outcomes[a], o)
}

// With a Picker, each attempt goes to the picked instance with the Host
// header kept, and a retry goes to another instance: one instance of three
// refusing connections costs no call.
func TestPickerSpreadsAttemptsAndRetriesElsewhere(t *testing.T) {
	var hosts sync.Map
	handler := func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host, true)
		_, _ = io.WriteString(w, "ok")
	}
	a, b := newServer(t, handler), newServer(t, handler)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close() // refuses connections
	picker := &roundRobin{addrs: []string{a.Listener.Addr().String(), down, b.Listener.Addr().String()}}
	c, _ := a.client(t, httpclient.Config{Picker: picker, Retry: fastRetry(3), Breaker: &breaker.Config{}})
	for i := range 30 {
		code, body, err := get(t, c, "http://users.internal/profile")
		if err != nil || code != 200 || body != "ok" {
			t.Fatalf("call %d: %d %q %v; want every call answered", i, code, body, err)
		}
	}
	if _, ok := hosts.Load("users.internal"); !ok {
		t.Fatalf("the servers never saw Host: users.internal")
	}
	picker.mu.Lock()
	defer picker.mu.Unlock()
	for _, o := range picker.outcomes[down] {
		if o != bulwark.Failure {
			t.Fatalf("the refusing instance reported %v, want failures", o)
		}
	}
	if len(picker.outcomes[down]) == 0 || a.requests.Load()+b.requests.Load() != 30 {
		t.Fatalf("down got %d attempts, the healthy ones %d requests; want some on down and 30 answered",
			len(picker.outcomes[down]), a.requests.Load()+b.requests.Load())
	}
}

// The Transport shows its breakers and bulkheads, as configured, keyed by
// the key of each attempt (scheme://host:port without a Picker).
func TestTransportShowsItsGuards(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	c, tr := srv.client(t, httpclient.Standard())
	if tr.Breakers() == nil || tr.Bulkheads() == nil {
		t.Fatalf("Standard: Breakers() = %v, Bulkheads() = %v, want both", tr.Breakers(), tr.Bulkheads())
	}
	if _, _, err := get(t, c, srv.URL); err != nil {
		t.Fatal(err)
	}
	host := srv.URL // the key: scheme://host:port
	if got := tr.Breakers().Counts(host).Successes; got != 1 {
		t.Fatalf("breaker of %s counts %d successes, want 1", host, got)
	}
	if got := tr.Bulkheads().InFlight(host); got != 0 {
		t.Fatalf("bulkhead of %s holds %d, want 0 after the body was read", host, got)
	}
	_, bare := srv.client(t, httpclient.Config{})
	if bare.Breakers() != nil || bare.Bulkheads() != nil {
		t.Fatal("a zero Config has guards")
	}
}
