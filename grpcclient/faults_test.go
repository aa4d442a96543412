package grpcclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// untilAdmitted calls until the breaker stops refusing: its open period is
// over and it admits trial calls. The open period is a few milliseconds;
// the loop is bounded by the test's generous context.
func untilAdmitted(t *testing.T, call func() error) error {
	t.Helper()
	ctx := wait(t)
	for {
		err := call()
		if !errors.Is(err, breaker.ErrOpen) {
			return err
		}
		if ctx.Err() != nil {
			t.Fatal("the breaker never admitted a trial call")
		}
	}
}

// A burst of Unavailable answers opens the breaker, which then refuses
// calls without sending them; after its open period, trial calls (half
// open) go through: a failed one opens it again, successful ones close it.
func TestUnavailableBurstAndHalfOpenProbes(t *testing.T) {
	srv, down := switchable(t)
	var changes []string
	brk := &breaker.Config{ConsecutiveFailures: 3, OpenDuration: 5 * time.Millisecond, HalfOpenTrials: 2,
		OnStateChange: func(e breaker.Event) { changes = append(changes, e.To.String()) }}
	client, ic := dial(t, srv.addr, grpcclient.Config{Breaker: brk})
	call := func() error {
		_, err := client.UnaryCall(wait(t), request("", codes.OK))
		return err
	}

	down.Store(true)
	for range 3 {
		mustCode(t, call(), codes.Unavailable)
	}
	if got := ic.Breakers().State(unaryMethod); got != breaker.Open {
		t.Fatalf("after 3 failures the breaker is %v, want open", got)
	}
	sent := srv.calls.Load()
	err := call()
	if !errors.Is(err, breaker.ErrOpen) || status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want a refusal (Unavailable, breaker.ErrOpen)", err)
	}
	if srv.calls.Load() != sent {
		t.Fatal("an open breaker let a call through")
	}

	// A trial that fails opens the breaker again.
	mustCode(t, untilAdmitted(t, call), codes.Unavailable)
	if got := ic.Breakers().State(unaryMethod); got != breaker.Open {
		t.Fatalf("after a failed trial the breaker is %v, want open", got)
	}

	// Two trials that succeed close it.
	down.Store(false)
	if err := untilAdmitted(t, call); err != nil {
		t.Fatal(err)
	}
	if got := ic.Breakers().State(unaryMethod); got != breaker.HalfOpen {
		t.Fatalf("after one good trial the breaker is %v, want half-open", got)
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	if got := ic.Breakers().State(unaryMethod); got != breaker.Closed {
		t.Fatalf("after two good trials the breaker is %v, want closed", got)
	}
	want := []string{"open", "half-open", "open", "half-open", "closed"}
	if len(changes) != len(want) {
		t.Fatalf("got state changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("got state changes %v, want %v", changes, want)
		}
	}
}

// The server stops: calls fail with Unavailable (no connection) and the
// breaker opens. It comes back on the same address: trials wait for the
// connection, succeed, and close the breaker.
func TestServerStoppedAndRestarted(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, grpcclient.Config{
		Breaker:        &breaker.Config{ConsecutiveFailures: 2, OpenDuration: 5 * time.Millisecond, HalfOpenTrials: 1},
		AttemptTimeout: 5 * time.Second,
	})
	if _, err := client.UnaryCall(wait(t), request("up", codes.OK)); err != nil {
		t.Fatal(err)
	}
	srv.stop()
	for range 2 {
		_, err := client.UnaryCall(wait(t), request("", codes.OK))
		mustCode(t, err, codes.Unavailable)
	}
	if got := ic.Breakers().State(unaryMethod); got != breaker.Open {
		t.Fatalf("with the server down the breaker is %v, want open", got)
	}
	srv.restart(t)
	// The trial waits for the connection rather than failing at once while
	// grpc-go reconnects.
	err := untilAdmitted(t, func() error {
		_, err := client.UnaryCall(wait(t), request("back", codes.OK), grpc.WaitForReady(true))
		return err
	})
	if err != nil {
		t.Fatalf("the trial after the restart: %v", err)
	}
	if got := ic.Breakers().State(unaryMethod); got != breaker.Closed {
		t.Fatalf("after a good trial the breaker is %v, want closed", got)
	}
}

// A slow handler is cut by the attempt deadline, which the server sees
// too; the slot it held is free again, and the breaker counts the
// slowness against the method.
func TestSlowHandler(t *testing.T) {
	serverSaw := make(chan error, 1)
	srv := newServer(t, &service{unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		<-ctx.Done()
		serverSaw <- ctx.Err()
		return nil, status.FromContextError(ctx.Err()).Err()
	}})
	client, ic := dial(t, srv.addr, grpcclient.Config{
		AttemptTimeout: 50 * time.Millisecond,
		Breaker:        &breaker.Config{MinimumCalls: 1000},
		Bulkhead:       &bulkhead.Config{Limit: 1},
	})
	_, err := client.UnaryCall(wait(t), request("", codes.OK))
	mustCode(t, err, codes.DeadlineExceeded)
	if err := <-serverSaw; err != context.DeadlineExceeded && err != context.Canceled {
		t.Fatalf("the server's context ended with %v, want its deadline or a cancellation", err)
	}
	held(t, ic, unaryMethod, 0)
	counts(t, ic, unaryMethod, 0, 1, 0)
}
