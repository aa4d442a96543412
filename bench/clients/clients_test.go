package clients_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/clients"
	"github.com/bulwarkrpc/bulwark/bench/fleet"
	"github.com/bulwarkrpc/bulwark/bench/load"
)

func startFleet(t *testing.T, b fleet.Behavior) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(fleet.Config{HTTP: 3, GRPC: 3, Schedule: fleet.Schedule{Base: b}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func build(t *testing.T, s clients.Spec, e clients.Endpoints) (clients.Client, *atomic.Int64) {
	t.Helper()
	n := new(atomic.Int64)
	c, err := s.New(e, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c, n
}

func endpoints(f *fleet.Fleet) clients.Endpoints {
	return clients.Endpoints{HTTP: f.HTTPURLs(), GRPC: f.GRPCAddrs()}
}

// Every client succeeds against a healthy fleet with one attempt per call,
// and its calls go where the load generator sends them, unless it
// balances by itself.
func TestHealthy(t *testing.T) {
	f := startFleet(t, fleet.Behavior{})
	for _, s := range clients.Specs() {
		t.Run(s.Name, func(t *testing.T) {
			before := f.HTTPArrivals()
			if s.Transport == clients.GRPC {
				before = f.GRPCArrivals()
			}
			c, n := build(t, s, endpoints(f))
			for i := range 6 {
				if got := c.Call(t.Context(), i, "k"); got != load.Success {
					t.Fatalf("call %d: got %v, want success", i, got)
				}
			}
			if got := n.Load(); got != 6 {
				t.Errorf("got %d attempts, want 6", got)
			}
			after := f.HTTPArrivals()
			if s.Transport == clients.GRPC {
				after = f.GRPCArrivals()
			}
			for i := range after {
				if d := after[i] - before[i]; !s.Balances && d != 2 {
					t.Errorf("endpoint %d: got %d calls, want 2", i, d)
				}
			}
			if s.Config == "" {
				t.Error("got no Config description")
			}
		})
	}
}

// Against endpoints that always fail, every client fails, and those that
// retry put more attempts on the wire than calls.
func TestFailing(t *testing.T) {
	f := startFleet(t, fleet.Behavior{ErrorRate: 1})
	retries := map[string]bool{"retryablehttp": true, "failsafe-go": true, "bulwark": true, "grpc-go": true, "bulwark-grpc": true}
	for _, s := range clients.Specs() {
		t.Run(s.Name, func(t *testing.T) {
			c, n := build(t, s, endpoints(f))
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			defer cancel()
			if got := c.Call(ctx, 0, "k"); got != load.Failure {
				t.Fatalf("got %v, want failure", got)
			}
			if got := n.Load(); retries[s.Name] != (got > 1) {
				t.Errorf("got %d attempts, want more than one: %v", got, retries[s.Name])
			}
			if s.Name == "grpc-go" && n.Load() != 4 {
				t.Errorf("got %d attempts, want its MaxAttempts, 4", n.Load())
			}
		})
	}
}

// A flaky server: good until told otherwise.
func flaky(t *testing.T) (*httptest.Server, *atomic.Bool) {
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok " + r.URL.Path))
	}))
	t.Cleanup(srv.Close)
	return srv, &broken
}

func spec(t *testing.T, name string) clients.Spec {
	t.Helper()
	s, err := clients.Lookup([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	return s[0]
}

// bulwark answers a failed GET from its cache.
func TestBulwarkFallback(t *testing.T) {
	srv, broken := flaky(t)
	c, _ := build(t, spec(t, "bulwark"), clients.Endpoints{HTTP: []string{srv.URL}})
	if got := c.Call(t.Context(), 0, "k"); got != load.Success {
		t.Fatalf("got %v, want success", got)
	}
	broken.Store(true)
	if got := c.Call(t.Context(), 0, "k"); got != load.Fallback {
		t.Errorf("cached key: got %v, want fallback", got)
	}
	if got := c.Call(t.Context(), 0, "other"); got != load.Failure {
		t.Errorf("uncached key: got %v, want failure", got)
	}
}

// The clients with breakers report them open once enough calls failed.
func TestBreakersOpen(t *testing.T) {
	for _, name := range []string{"bulwark", "failsafe-go", "hystrix-go"} {
		t.Run(name, func(t *testing.T) {
			srv, broken := flaky(t)
			broken.Store(true)
			c, _ := build(t, spec(t, name), clients.Endpoints{HTTP: []string{srv.URL}})
			b, ok := c.(clients.Breakers)
			if !ok {
				t.Fatal("got no Breakers method")
			}
			if open, half := b.Breakers(); open != 0 || half != 0 {
				t.Fatalf("got %d open, %d half-open before any call, want none", open, half)
			}
			for i := 0; ; i++ {
				if i == 2000 {
					t.Fatal("still closed after 2000 failed calls")
				}
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				c.Call(ctx, 0, "k")
				cancel()
				if open, _ := b.Breakers(); open == 1 {
					break
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	got, err := clients.Lookup([]string{"grpc-go", "naive"})
	if err != nil || len(got) != 2 || got[0].Name != "grpc-go" || got[1].Name != "naive" {
		t.Errorf("got %v, %v, want grpc-go then naive", got, err)
	}
	if _, err := clients.Lookup([]string{"curl"}); err == nil || !strings.Contains(err.Error(), `unknown client "curl" (known: naive, retryablehttp,`) {
		t.Errorf("got %v, want an error naming curl and listing the known ones", err)
	}
	bulwark := 0
	for _, s := range clients.Specs() {
		if s.Bulwark {
			bulwark++
		}
	}
	if bulwark == 0 {
		t.Error("got no bulwark client")
	}
}

// bulwark fans out with fanout.Gather: all but one answering is a success.
func TestBulwarkFanOut(t *testing.T) {
	tests := []struct {
		down []int
		want load.Outcome
	}{
		{nil, load.Success},
		{[]int{2}, load.Success},
		{[]int{0, 2}, load.Failure},
	}
	for _, tt := range tests {
		var sched fleet.Schedule
		if tt.down != nil { // a nil Endpoints would mean every endpoint
			sched.Phases = []fleet.Phase{{Endpoints: tt.down, Behavior: fleet.Behavior{Down: true}}}
		}
		f, err := fleet.Start(fleet.Config{HTTP: 3, Schedule: sched})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := build(t, spec(t, "bulwark"), endpoints(f))
		fo, ok := c.(clients.FanOuter)
		if !ok {
			t.Fatal("bulwark: got no FanOut method")
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		if got := fo.FanOut(ctx, 3, "k"); got != tt.want {
			t.Errorf("down %v: got %v, want %v", tt.down, got, tt.want)
		}
		cancel()
		f.Close()
	}
}
