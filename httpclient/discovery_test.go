package httpclient_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/httpclient"
)

// The Standard client over a discovery Balancer: one instance of three
// refuses connections, and every call is still answered.
func TestStandardOverABalancer(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }
	a, b := newServer(t, ok), newServer(t, ok)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	st, err := discovery.NewStatic(map[string][]discovery.Instance{"users": {
		{Addr: a.Listener.Addr().String()}, {Addr: down}, {Addr: b.Listener.Addr().String()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []discovery.Policy{discovery.RoundRobin, discovery.PeakEWMA} {
		bal, err := discovery.NewBalancer(context.Background(), st, "users", discovery.BalancerConfig{Policy: policy})
		if err != nil {
			t.Fatal(err)
		}
		cfg := httpclient.Standard()
		cfg.Picker = bal
		c, _ := a.client(t, cfg)
		for i := range 60 {
			code, _, err := get(t, c, "http://users/profile")
			if err != nil || code != http.StatusNoContent {
				t.Fatalf("policy %v call %d: %d, %v; want every call answered", policy, i, code, err)
			}
		}
		for _, s := range bal.Status() {
			if s.Instance.Addr == down && s.Successes != 0 {
				t.Fatalf("the refusing instance counted %d successes", s.Successes)
			}
		}
		if err := bal.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
