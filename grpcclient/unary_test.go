package grpcclient_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func TestUnaryPassesThrough(t *testing.T) {
	for name, cfg := range map[string]grpcclient.Config{"zero": {}, "standard": grpcclient.Standard()} {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, nil)
			client, _ := dial(t, srv.addr, cfg)
			resp, err := client.UnaryCall(wait(t), request("hello", codes.OK))
			if err != nil || string(resp.GetPayload().GetBody()) != "hello" {
				t.Fatalf("got %v, %v; want hello", resp, err)
			}
			_, err = client.UnaryCall(wait(t), request("", codes.NotFound))
			mustCode(t, err, codes.NotFound)
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("got %T, want the server's status error itself", err)
			}
		})
	}
}

// The attempt deadline is sent to the server, and is never later than the
// caller's own deadline.
func TestAttemptDeadlineReachesServer(t *testing.T) {
	tests := []struct {
		name           string
		attempt        time.Duration
		caller         time.Duration // 0: none
		atLeast, below time.Duration // the server's remaining time
	}{
		{"attempt deadline", 30 * time.Second, 0, 20 * time.Second, 31 * time.Second},
		{"caller's is earlier", 30 * time.Second, 5 * time.Second, time.Second, 6 * time.Second},
		{"ours is earlier", 5 * time.Second, 30 * time.Second, time.Second, 6 * time.Second},
		{"none of ours", 0, 5 * time.Second, time.Second, 6 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, &service{unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
				dl, ok := ctx.Deadline()
				if !ok {
					return &testpb.SimpleResponse{Username: "none"}, nil
				}
				return &testpb.SimpleResponse{Username: strconv.FormatInt(int64(time.Until(dl)), 10)}, nil
			}})
			client, _ := dial(t, srv.addr, grpcclient.Config{AttemptTimeout: tt.attempt})
			ctx := context.Background()
			if tt.caller > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.caller)
				defer cancel()
			}
			resp, err := client.UnaryCall(ctx, request("", codes.OK))
			if err != nil {
				t.Fatal(err)
			}
			left, err := strconv.ParseInt(resp.GetUsername(), 10, 64)
			if err != nil {
				t.Fatalf("the server saw no deadline (%q)", resp.GetUsername())
			}
			if d := time.Duration(left); d < tt.atLeast || d >= tt.below {
				t.Fatalf("the server had %v left, want within [%v, %v)", d, tt.atLeast, tt.below)
			}
		})
	}
}

// blockUntilDone is a handler that answers only when its caller is gone.
func blockUntilDone(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// Our deadline is DeadlineExceeded for gRPC, matches timeout.ErrTimeout
// and context.DeadlineExceeded, and is a Failure of the method; the
// caller's own deadline or cancellation is neither ours nor a Failure.
func TestDeadlinesAndCancellation(t *testing.T) {
	tests := []struct {
		name     string
		cfg      grpcclient.Config
		ctx      func() (context.Context, context.CancelFunc)
		code     codes.Code
		ours     bool
		failures uint32
	}{
		{"attempt deadline", grpcclient.Config{AttemptTimeout: 50 * time.Millisecond},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 20*time.Second)
			},
			codes.DeadlineExceeded, true, 1},
		{"total deadline", grpcclient.Config{TotalTimeout: 50 * time.Millisecond},
			func() (context.Context, context.CancelFunc) { return context.Background(), func() {} },
			codes.DeadlineExceeded, true, 1},
		{"caller's deadline", grpcclient.Config{AttemptTimeout: 20 * time.Second},
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			codes.DeadlineExceeded, false, 0},
		{"caller cancels", grpcclient.Config{AttemptTimeout: 20 * time.Second},
			func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			},
			codes.Canceled, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, &service{unary: blockUntilDone})
			tt.cfg.Breaker = &breaker.Config{}
			client, ic := dial(t, srv.addr, tt.cfg)
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := client.UnaryCall(ctx, request("", codes.OK))
			mustCode(t, err, tt.code)
			if got := errors.Is(err, timeout.ErrTimeout); got != tt.ours {
				t.Errorf("errors.Is(err, timeout.ErrTimeout) = %v, want %v (%v)", got, tt.ours, err)
			}
			if tt.ours && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want it to match context.DeadlineExceeded", err)
			}
			c := ic.Breakers().Counts(unaryMethod)
			if c.Failures != tt.failures || c.Successes != 0 {
				t.Errorf("breaker counts %+v, want %d failures", c, tt.failures)
			}
		})
	}
}

// Status codes are classified as the package documentation says.
func TestStatusCodesFeedTheBreaker(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, grpcclient.Config{Breaker: &breaker.Config{MinimumCalls: 1000}})
	for _, c := range []codes.Code{codes.OK, codes.Unavailable, codes.Internal, codes.Unknown, codes.ResourceExhausted,
		codes.DeadlineExceeded, codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Canceled, codes.Unimplemented} {
		_, err := client.UnaryCall(wait(t), request("", c))
		mustCode(t, err, c)
	}
	got := ic.Breakers().Counts(unaryMethod)
	if got.Successes != 1 || got.Failures != 5 || got.Ignored != 5 {
		t.Fatalf("got %+v, want 1 success, 5 failures and 5 ignored", got)
	}
}

func TestRefusalsCarryAStatus(t *testing.T) {
	t.Run("breaker open", func(t *testing.T) {
		srv := newServer(t, nil)
		client, _ := dial(t, srv.addr, grpcclient.Config{Breaker: &breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour}})
		_, err := client.UnaryCall(wait(t), request("", codes.Unavailable))
		mustCode(t, err, codes.Unavailable)
		before := srv.calls.Load()
		_, err = client.UnaryCall(wait(t), request("", codes.OK))
		mustCode(t, err, codes.Unavailable)
		var open *breaker.OpenError
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, bulwark.ErrRejected) || !errors.As(err, &open) {
			t.Fatalf("got %v, want it to match breaker.ErrOpen and bulwark.ErrRejected", err)
		}
		if open.Key != unaryMethod {
			t.Errorf("got key %q, want %q", open.Key, unaryMethod)
		}
		if srv.calls.Load() != before {
			t.Error("the refused call reached the server")
		}
		// Every refusal of one open period is the same error: refusing
		// allocates nothing.
		_, err2 := client.UnaryCall(wait(t), request("", codes.OK))
		if err2 != err {
			t.Errorf("got a new error for the same refusal")
		}
	})
	t.Run("bulkhead full", func(t *testing.T) {
		release := make(chan struct{})
		entered := make(chan struct{}, 1)
		srv := newServer(t, &service{unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			entered <- struct{}{}
			<-release
			return echo(req)
		}})
		client, ic := dial(t, srv.addr, grpcclient.Config{Bulkhead: &bulkhead.Config{Limit: 1}, Breaker: &breaker.Config{}})
		done := make(chan error)
		go func() {
			_, err := client.UnaryCall(wait(t), request("slow", codes.OK))
			done <- err
		}()
		<-entered
		_, err := client.UnaryCall(wait(t), request("", codes.OK))
		mustCode(t, err, codes.ResourceExhausted)
		var full *bulkhead.FullError
		if !errors.Is(err, bulkhead.ErrFull) || !errors.Is(err, bulwark.ErrRejected) || !errors.As(err, &full) {
			t.Fatalf("got %v, want it to match bulkhead.ErrFull and bulwark.ErrRejected", err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := ic.Bulkheads().InFlight(unaryMethod); n != 0 {
			t.Fatalf("%d calls hold a slot after the call returned, want 0", n)
		}
		if c := ic.Breakers().Counts(unaryMethod); c.Failures != 0 {
			t.Fatalf("breaker counts %+v: a full bulkhead counted against the method", c)
		}
	})
	t.Run("caller gone before the call", func(t *testing.T) {
		srv := newServer(t, nil)
		client, _ := dial(t, srv.addr, grpcclient.Config{Breaker: &breaker.Config{}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := client.UnaryCall(ctx, request("", codes.OK))
		mustCode(t, err, codes.Canceled)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want it to match context.Canceled", err)
		}
	})
}

// The key of the guards is configurable: here per target and method.
func TestKey(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, grpcclient.Config{Breaker: &breaker.Config{},
		Key: func(cc *grpc.ClientConn, m string) string { return cc.Target() + m }})
	if _, err := client.UnaryCall(wait(t), request("", codes.OK)); err != nil {
		t.Fatal(err)
	}
	key := "passthrough:///" + srv.addr + unaryMethod
	if c := ic.Breakers().Counts(key); c.Successes != 1 {
		t.Fatalf("breaker of %q counts %+v, want one success", key, c)
	}
}

// A panicking invoker is recorded as a Failure, releases its slot, and
// the panic goes on.
func TestInvokerPanic(t *testing.T) {
	ic, err := grpcclient.New(grpcclient.Config{Breaker: &breaker.Config{}, Bulkhead: &bulkhead.Config{Limit: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { panic(errTest) }
	func() {
		defer func() {
			if r := recover(); r != errTest {
				t.Fatalf("recovered %v, want the invoker's panic", r)
			}
		}()
		_ = ic.UnaryClientInterceptor()(context.Background(), unaryMethod, &testpb.SimpleRequest{}, &testpb.SimpleResponse{}, nil, invoker)
	}()
	if c := ic.Breakers().Counts(unaryMethod); c.Failures != 1 {
		t.Fatalf("breaker counts %+v, want one failure", c)
	}
	if n := ic.Bulkheads().InFlight(unaryMethod); n != 0 {
		t.Fatalf("%d slots held, want 0", n)
	}
}

// A unary call queued in the bulkhead ends at its total deadline, though
// its attempt deadline is shorter and only starts once the bulkhead admits
// it: the queue is bounded by the total deadline, and the call never
// reaches the server.
func TestQueuedCallEndsAtTheTotalDeadline(t *testing.T) {
	svc := &service{}
	srv := newServer(t, svc)
	cfg := grpcclient.Config{
		TotalTimeout:   300 * time.Millisecond,
		AttemptTimeout: 100 * time.Millisecond,
		Bulkhead:       &bulkhead.Config{Limit: 1, MaxQueue: 1},
		Key:            func(*grpc.ClientConn, string) string { return "one" }, // streams and calls share the slot
	}
	client, ic := dial(t, srv.addr, cfg)
	hold, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := client.FullDuplexCall(hold); err != nil { // holds the only slot while it lives
		t.Fatal(err)
	}
	if n := ic.Bulkheads().InFlight("one"); n != 1 {
		t.Fatalf("%d in flight, want the stream's slot held", n)
	}
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second) // bounds the test, not the call
	defer stop()
	start := time.Now()
	_, err := client.UnaryCall(ctx, request("queued", codes.OK))
	elapsed := time.Since(start)
	mustCode(t, err, codes.DeadlineExceeded)
	if !errors.Is(err, timeout.ErrTimeout) {
		t.Errorf("got %v, want our total deadline's error", err)
	}
	if elapsed < 300*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("the queued call returned after %v, want its total deadline, 300ms", elapsed)
	}
	if n := svc.calls.Load(); n != 0 {
		t.Errorf("the server received %d calls, want none", n)
	}
	if n := ic.Bulkheads().Queued("one"); n != 0 {
		t.Errorf("%d still queued, want 0", n)
	}
}
