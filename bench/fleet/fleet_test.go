package fleet_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark/bench/fleet"
)

func start(t *testing.T, cfg fleet.Config) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func client(t *testing.T) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestStartValidates(t *testing.T) {
	for _, tt := range []struct {
		cfg  fleet.Config
		want string
	}{
		{fleet.Config{HTTP: -1}, "Config.HTTP is -1"},
		{fleet.Config{GRPC: -2}, "Config.GRPC is -2"},
		{fleet.Config{HTTP: 1, Schedule: fleet.Schedule{Base: fleet.Behavior{ResetRate: 2}}}, "ResetRate is 2"},
	} {
		if f, err := fleet.Start(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("got %v, want an error containing %q", err, tt.want)
		}
	}
}

func TestHTTPFaults(t *testing.T) {
	tests := []struct {
		name     string
		b        fleet.Behavior
		check    func(t *testing.T, resp *http.Response, body []byte, err error)
		arrivals int64
	}{
		{"healthy", fleet.Behavior{Latency: fleet.Fixed(time.Millisecond)}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err != nil || resp.StatusCode != 200 || len(body) != 256 || resp.Header.Get("X-Endpoint") != "0" {
				t.Errorf("got %v, %v, %d bytes, want 200 with 256 bytes from endpoint 0", resp, err, len(body))
			}
		}, 1},
		{"error", fleet.Behavior{ErrorRate: 1}, func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if err != nil || resp.StatusCode != 500 {
				t.Errorf("got %v, %v, want 500", resp, err)
			}
		}, 1},
		{"throttle", fleet.Behavior{ThrottleRate: 1, RetryAfter: 1500 * time.Millisecond}, func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if err != nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
				t.Errorf("got %v, %v, want 429 with Retry-After: 2", resp, err)
			}
		}, 1},
		{"reset mid-body", fleet.Behavior{ResetRate: 1}, func(t *testing.T, resp *http.Response, body []byte, err error) {
			if err == nil || resp == nil || resp.StatusCode != 200 || len(body) >= 256 {
				t.Errorf("got %v, %d bytes, %v, want 200 then an error reading the body", resp, len(body), err)
			}
		}, 1},
		{"down", fleet.Behavior{Down: true}, func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("got %v, %v, want connection refused", resp, err)
			}
		}, 0},
		{"hang", fleet.Behavior{Hang: true}, func(t *testing.T, resp *http.Response, _ []byte, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, %v, want the client's deadline", resp, err)
			}
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, fleet.Config{HTTP: 1, Schedule: fleet.Schedule{Base: tt.b}})
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.HTTPURLs()[0]+"/item/k", nil)
			resp, err := client(t).Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tt.check(t, resp, body, err)
			if got := f.HTTPArrivals()[0]; got != tt.arrivals {
				t.Errorf("got %d arrivals, want %d", got, tt.arrivals)
			}
		})
	}
}

// Beyond capacity and queue, requests are shed at once with 503.
func TestHTTPCapacity(t *testing.T) {
	f := start(t, fleet.Config{HTTP: 1, Schedule: fleet.Schedule{Base: fleet.Behavior{Hang: true, Capacity: 1}}})
	c := client(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var mu sync.Mutex
	shed, hung := 0, 0
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.HTTPURLs()[0]+"/item/k", nil)
			resp, err := c.Do(req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && resp.StatusCode == http.StatusServiceUnavailable:
				resp.Body.Close()
				shed++
			case errors.Is(err, context.DeadlineExceeded):
				hung++
			default:
				t.Errorf("got %v, %v, want 503 or the deadline", resp, err)
			}
		}()
	}
	wg.Wait()
	if shed != 2 || hung != 1 {
		t.Errorf("got %d shed and %d held, want 2 and 1", shed, hung)
	}
}

func grpcClient(t *testing.T, addr string) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func TestGRPCFaults(t *testing.T) {
	tests := []struct {
		name     string
		b        fleet.Behavior
		code     codes.Code
		pushback string
		arrivals int64
	}{
		{"healthy", fleet.Behavior{Latency: fleet.Fixed(time.Millisecond)}, codes.OK, "", 1},
		{"error", fleet.Behavior{ErrorRate: 1}, codes.Unavailable, "", 1},
		{"throttle", fleet.Behavior{ThrottleRate: 1, RetryAfter: 1500 * time.Millisecond}, codes.ResourceExhausted, "1500", 1},
		{"down", fleet.Behavior{Down: true}, codes.Unavailable, "", 0},
		{"hang", fleet.Behavior{Hang: true}, codes.DeadlineExceeded, "", 1},
		{"over capacity", fleet.Behavior{Capacity: 1, Queue: 0, Hang: true}, codes.DeadlineExceeded, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, fleet.Config{GRPC: 1, Schedule: fleet.Schedule{Base: tt.b}})
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			var trailer metadata.MD
			resp, err := grpcClient(t, f.GRPCAddrs()[0]).UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 100}, grpc.Trailer(&trailer))
			if got := status.Code(err); got != tt.code {
				t.Fatalf("got %v (%v), want %v", got, err, tt.code)
			}
			if tt.code == codes.OK && len(resp.GetPayload().GetBody()) != 100 {
				t.Errorf("got %d bytes, want 100", len(resp.GetPayload().GetBody()))
			}
			if got := strings.Join(trailer.Get("grpc-retry-pushback-ms"), ","); got != tt.pushback {
				t.Errorf("got pushback %q, want %q", got, tt.pushback)
			}
			if got := f.GRPCArrivals()[0]; got != tt.arrivals {
				t.Errorf("got %d arrivals, want %d", got, tt.arrivals)
			}
		})
	}
}
