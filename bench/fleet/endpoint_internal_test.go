package fleet

// An internal test: it drives endpoints down and up directly, where the
// public API would need real time to pass (Play's clock is tested on a
// fake one in schedule_test.go).

import (
	"context"
	"errors"
	"io"
	"net/http"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// An endpoint that goes down refuses connections, and comes back on the
// same address.
func TestDownThenUp(t *testing.T) {
	f, err := Start(Config{HTTP: 1, GRPC: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	get := func() error {
		resp, err := c.Get(f.HTTPURLs()[0] + "/item/k")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	call := func() error {
		conn, err := grpc.NewClient("passthrough:///"+f.GRPCAddrs()[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("up: got %v, want nil", err)
	}
	if err := call(); err != nil {
		t.Fatalf("up: got %v, want nil", err)
	}
	if err := f.applyTo(0, Behavior{Down: true}); err != nil {
		t.Fatal(err)
	}
	if err := get(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("down: got %v, want connection refused", err)
	}
	if err := call(); status.Code(err) != codes.Unavailable {
		t.Errorf("down: got %v, want Unavailable", err)
	}
	if err := f.applyTo(0, Behavior{}); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Errorf("up again: got %v, want nil", err)
	}
	if err := call(); err != nil {
		t.Errorf("up again: got %v, want nil", err)
	}
	if got := f.HTTPArrivals()[0]; got != 2 {
		t.Errorf("got %d HTTP arrivals, want 2", got)
	}
}

// The gate admits Capacity at once, queues Queue more in order, sheds the
// rest, and hands a slot over in order.
func TestGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		b := &Behavior{Capacity: 1, Queue: 2, QueueTimeout: time.Second}
		ctx := context.Background()
		if !g.enter(ctx, b, nil) {
			t.Fatal("first: refused, want admitted")
		}
		order := make(chan int, 2)
		for i := range 2 {
			go func() {
				if g.enter(ctx, b, nil) {
					order <- i
					g.leave()
				}
			}()
			synctest.Wait() // queued in this order
		}
		if g.enter(ctx, b, nil) {
			t.Error("fourth: admitted, want shed (queue full)")
		}
		g.leave()
		if a, b := <-order, <-order; a != 0 || b != 1 {
			t.Errorf("got order %d, %d, want 0, 1", a, b)
		}
		synctest.Wait()
		g.lock()
		busy, queued := g.busy, len(g.queue)
		g.unlock()
		if busy != 0 || queued != 0 {
			t.Errorf("got busy %d, queue %d, want both 0", busy, queued)
		}
	})
}

func TestGateQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		b := &Behavior{Capacity: 1, Queue: 1, QueueTimeout: 100 * time.Millisecond}
		g.enter(context.Background(), b, nil)
		start := time.Now()
		if g.enter(context.Background(), b, nil) {
			t.Error("admitted, want shed after the queue timeout")
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("shed after %v, want 100ms", d)
		}
		g.leave()
		synctest.Wait()
		g.lock()
		busy, queued := g.busy, len(g.queue)
		g.unlock()
		if busy != 0 || queued != 0 {
			t.Errorf("got busy %d, queue %d, want both 0", busy, queued)
		}
	})
}
