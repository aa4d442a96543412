package grpcclient_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

func okInvoker(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
	return nil
}

// The pass-through path of a healthy unary call allocates nothing of its
// own: nothing beyond what the breaker and the bulkhead allocate when used
// directly, and with an attempt deadline, nothing beyond the bare
// context.WithTimeout it replaces.
func TestUnaryAllocations(t *testing.T) {
	ctx := context.Background()
	req, reply := &testpb.SimpleRequest{}, &testpb.SimpleResponse{}
	withTimeout := testing.AllocsPerRun(1000, func() {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = okInvoker(c, unaryMethod, req, reply, nil)
		cancel()
	})
	brk, err := breaker.NewSet(breaker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer brk.Close()
	blk, err := bulkhead.NewSet(bulkhead.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer blk.Close()
	guards := testing.AllocsPerRun(1000, func() {
		p1, _ := brk.Enter(ctx, unaryMethod)
		p2, _ := blk.Enter(ctx, unaryMethod)
		p2.Done(bulwark.Success)
		p1.Done(bulwark.Success)
	})
	tests := []struct {
		name string
		cfg  grpcclient.Config
		max  float64
	}{
		{"zero", grpcclient.Config{}, 0},
		{"breaker and bulkhead", grpcclient.Config{Breaker: &breaker.Config{}, Bulkhead: &bulkhead.Config{}}, guards},
		{"standard", grpcclient.Standard(), guards + withTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic, err := grpcclient.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ic.Close()
			call := ic.UnaryClientInterceptor()
			_ = call(ctx, unaryMethod, req, reply, nil, okInvoker) // the key's entries are made on first use
			got := testing.AllocsPerRun(1000, func() {
				if err := call(ctx, unaryMethod, req, reply, nil, okInvoker); err != nil {
					t.Fatal(err)
				}
			})
			if got > tt.max {
				t.Fatalf("got %v allocations per call, want at most %v (the guards alone: %v, context.WithTimeout alone: %v)", got, tt.max, guards, withTimeout)
			}
		})
	}
}

// A unary call starts no goroutine of its own: the invoker runs on the
// caller's goroutine, with no other goroutine started for the call.
func TestNoGoroutinePerUnaryCall(t *testing.T) {
	ic, err := grpcclient.New(grpcclient.Standard())
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	before := runtime.NumGoroutine()
	during := 0
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		during = runtime.NumGoroutine()
		return nil
	}
	if err := ic.UnaryClientInterceptor()(context.Background(), unaryMethod, &testpb.SimpleRequest{}, &testpb.SimpleResponse{}, nil, invoker); err != nil {
		t.Fatal(err)
	}
	if during > before {
		t.Fatalf("%d goroutines during the call, %d before: the call started one", during, before)
	}
}
