package grpcclient_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/hedge"
)

// bareClient connects to addr with no interceptor, or with opts.
func bareClient(b *testing.B, addr string, opts ...grpc.DialOption) testpb.TestServiceClient {
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return testpb.NewTestServiceClient(conn)
}

func median(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Nanoseconds())
}

// variant is one way of making the same call in a paired benchmark: through
// interceptors of its own or none, under a bare context.WithTimeout of 10s
// or not.
type variant struct {
	name    string
	unary   grpc.UnaryClientInterceptor  // nil: the bare call
	stream  grpc.StreamClientInterceptor // nil: the bare stream
	timeout bool
}

// variantKey carries, in a call's context, the variant the call is made as.
type variantKey struct{}

// sharedClient connects to addr through one interceptor of each kind that
// hands each call to the interceptor of the variant its context names, or
// to none. Every variant of a paired benchmark shares this one connection:
// given a connection of its own, a variant's median moved by up to ~0.9 µs
// with the order in which the connections were made (two bare variants
// differed by that much), more than the difference being measured.
func sharedClient(b *testing.B, addr string) testpb.TestServiceClient {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if v := ctx.Value(variantKey{}).(*variant); v.unary != nil {
			return v.unary(ctx, method, req, reply, cc, invoker, opts...)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if v := ctx.Value(variantKey{}).(*variant); v.stream != nil {
			return v.stream(ctx, desc, cc, method, streamer, opts...)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	return bareClient(b, addr, grpc.WithUnaryInterceptor(unary), grpc.WithStreamInterceptor(stream))
}

// through returns the variant that makes calls through the interceptors
// of cfg, which must need no service config: a connection shared by every
// variant cannot carry one variant's.
func through(b *testing.B, name string, cfg grpcclient.Config) variant {
	ic, err := grpcclient.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ic.Close() })
	if sc := ic.ServiceConfig(); sc != "" {
		b.Fatalf("variant %s needs the service config %s", name, sc)
	}
	return variant{name: name, unary: ic.UnaryClientInterceptor(), stream: ic.StreamClientInterceptor()}
}

// baseline returns the variants every paired benchmark starts with: the
// bare call; the bare call again, whose difference from the first is the
// measurement's own noise; and the bare call under context.WithTimeout.
func baseline() []variant {
	return []variant{{name: "bare"}, {name: "bare-again"}, {name: "timeout", timeout: true}}
}

// paired makes, in every iteration, one call of each variant over the
// same connection to a loopback server, timing each, in an order shuffled
// anew each time: a call runs faster after some calls than after others
// (in a fixed rotation, each variant always following the same one, the
// bare call measured twice differed by ~0.2 µs). It returns the median of
// each variant.
func paired(b *testing.B, c testpb.TestServiceClient, call func(ctx context.Context, c testpb.TestServiceClient) error, vs []variant) []float64 {
	times := make([][]time.Duration, len(vs))
	ctxs := make([]context.Context, len(vs))
	order := make([]int, len(vs))
	for j := range vs {
		ctxs[j] = context.WithValue(context.Background(), variantKey{}, &vs[j])
		order[j] = j
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		for _, j := range order {
			start := time.Now()
			ctx, cancel := ctxs[j], context.CancelFunc(func() {})
			if vs[j].timeout {
				ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			}
			if err := call(ctx, c); err != nil {
				b.Fatal(err)
			}
			cancel()
			times[j] = append(times[j], time.Since(start))
		}
	}
	meds := make([]float64, len(vs))
	for j := range vs {
		meds[j] = median(times[j])
	}
	return meds
}

// report reports the median of the bare call and what each other variant
// adds to it; with a "timeout" and a "standard" variant, their ratio too,
// the figure of merit: the stack's added latency against what a bare
// context.WithTimeout adds in the same run.
func report(b *testing.B, vs []variant, meds []float64) {
	b.ReportMetric(meds[0], "bare-ns")
	added := map[string]float64{}
	for j := 1; j < len(vs); j++ {
		added[vs[j].name] = meds[j] - meds[0]
		b.ReportMetric(meds[j]-meds[0], vs[j].name+"-added-ns")
	}
	if t, ok := added["timeout"]; ok && t > 0 {
		if s, ok := added["standard"]; ok {
			b.ReportMetric(s/t, "standard/timeout")
		}
	}
	b.ReportMetric(0, "ns/op") // the medians above are the result
}

// floorInterceptor is the least a client interceptor built on the parts
// the stack must use can cost: one gobreaker TwoStep breaker and one
// x/sync semaphore (no key lookup, no metrics, no classification beyond
// nil error) around a context.WithTimeout, written by hand.
func floorInterceptor() grpc.UnaryClientInterceptor {
	cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{})
	sem := semaphore.NewWeighted(256)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		done, err := cb.Allow()
		if err != nil {
			return err
		}
		if !sem.TryAcquire(1) {
			done(nil)
			return errors.New("full")
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = invoker(ctx, method, req, reply, cc, opts...)
		cancel()
		sem.Release(1)
		done(err)
		return err
	}
}

func unaryCall(req *testpb.SimpleRequest) func(context.Context, testpb.TestServiceClient) error {
	return func(ctx context.Context, c testpb.TestServiceClient) error {
		_, err := c.UnaryCall(ctx, req)
		return err
	}
}

// BenchmarkPaired makes, in every iteration, one bare unary call (twice:
// see baseline), one under a bare context.WithTimeout and one through the
// Standard interceptors (which send an attempt deadline too), over one
// connection to a loopback server (see paired). It reports the medians and
// what each adds to the bare call: a ratio from one run, so the machine's
// noise hits all alike. Run with -benchtime=20000x or more.
func BenchmarkPaired(b *testing.B) {
	srv := newServer(b, nil)
	vs := append(baseline(), through(b, "standard", grpcclient.Standard()))
	report(b, vs, paired(b, sharedClient(b, srv.addr), unaryCall(request("ok", 0)), vs))
}

// BenchmarkPairedBreakdown is BenchmarkPaired for each policy of Standard
// alone, and for the floor: the parts Standard is built on, composed by
// hand with nothing else (floorInterceptor).
func BenchmarkPairedBreakdown(b *testing.B) {
	srv := newServer(b, nil)
	vs := append(baseline(),
		through(b, "zero-config", grpcclient.Config{}),
		through(b, "attempt-deadline", grpcclient.Config{AttemptTimeout: 10 * time.Second}),
		through(b, "breaker", grpcclient.Config{Breaker: &breaker.Config{}}),
		through(b, "bulkhead", grpcclient.Config{Bulkhead: &bulkhead.Config{Limit: 256}}),
		through(b, "standard", grpcclient.Standard()),
		variant{name: "floor-by-hand", unary: floorInterceptor()},
	)
	report(b, vs, paired(b, sharedClient(b, srv.addr), unaryCall(request("ok", 0)), vs))
}

// BenchmarkPairedStream is BenchmarkPaired for a server-streaming call of
// one message, read to io.EOF; the Standard interceptors bound streams by
// no deadline of theirs, but hold a breaker and a bulkhead permit for the
// stream's life.
func BenchmarkPairedStream(b *testing.B) {
	srv := newServer(b, nil)
	req := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 8}}}
	call := func(ctx context.Context, c testpb.TestServiceClient) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := c.StreamingOutputCall(ctx, req)
		if err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	vs := append(baseline(), through(b, "standard", grpcclient.Standard()))
	report(b, vs, paired(b, sharedClient(b, srv.addr), call, vs))
}

// BenchmarkLoopback measures one unary call over loopback, in time and
// allocations (the server's, in the same process, included), bare, bare
// under context.WithTimeout (a deadline sent to the server costs
// allocations on both sides) and through each configuration, sequentially
// and in parallel.
func BenchmarkLoopback(b *testing.B) {
	srv := newServer(b, nil)
	req := request("ok", 0)
	clients := []struct {
		name    string
		cfg     *grpcclient.Config
		timeout bool
	}{
		{"bare", nil, false},
		{"bare+context.WithTimeout", nil, true},
		{"zero-config", &grpcclient.Config{}, false},
		{"standard", func() *grpcclient.Config { c := grpcclient.Standard(); return &c }(), false},
	}
	for _, cl := range clients {
		var c testpb.TestServiceClient
		if cl.cfg == nil {
			c = bareClient(b, srv.addr)
		} else {
			c, _ = dial(b, srv.addr, *cl.cfg)
		}
		do := func() error {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if cl.timeout {
				ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			}
			defer cancel()
			_, err := c.UnaryCall(ctx, req)
			return err
		}
		b.Run(cl.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := do(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(cl.name+"/par", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := do(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkInterceptor measures the interceptor alone, around an invoker
// that returns at once, beside what a user would write by hand: calling
// the invoker, or calling it under context.WithTimeout.
func BenchmarkInterceptor(b *testing.B) {
	req, reply := &testpb.SimpleRequest{}, &testpb.SimpleResponse{}
	type unary func(ctx context.Context) error
	wrap := func(cfg grpcclient.Config) unary {
		ic, err := grpcclient.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ic.Close() })
		call := ic.UnaryClientInterceptor()
		return func(ctx context.Context) error { return call(ctx, unaryMethod, req, reply, nil, okInvoker) }
	}
	cases := []struct {
		name string
		call unary
	}{
		{"bare-invoker", func(ctx context.Context) error { return okInvoker(ctx, unaryMethod, req, reply, nil) }},
		{"bare-context.WithTimeout", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return okInvoker(ctx, unaryMethod, req, reply, nil)
		}},
		{"floor-by-hand", func() unary {
			call := floorInterceptor()
			return func(ctx context.Context) error { return call(ctx, unaryMethod, req, reply, nil, okInvoker) }
		}()},
		{"zero-config", wrap(grpcclient.Config{})},
		{"breaker+bulkhead", wrap(grpcclient.Config{Breaker: &breaker.Config{}, Bulkhead: &bulkhead.Config{}})},
		{"standard", wrap(grpcclient.Standard())},
		{"standard+hedge", wrap(func() grpcclient.Config {
			c := grpcclient.Standard()
			c.Methods = map[string]grpcclient.Method{unaryMethod: {Hedge: &hedge.Config{Delay: time.Second}}}
			return c
		}())},
	}
	for _, c := range cases {
		b.Run(c.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if err := c.call(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/par", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := c.call(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// stubStream is a stream that ends at its first RecvMsg, as grpc-go does:
// it reports the end to the grpc.OnFinish options it was given.
type stubStream struct {
	grpc.ClientStream
	onFinish []func(error)
}

func (s *stubStream) RecvMsg(any) error {
	for _, f := range s.onFinish {
		f(nil)
	}
	return io.EOF
}

// BenchmarkStreamInterceptor measures the stream interceptor alone, around
// a streamer that returns at once and a stream that ends at its first
// RecvMsg, beside the bare streamer and the bare streamer plus what
// releasing on the context's end with context.AfterFunc would cost
// (register, then stop, on a cancellable context): grpc-go already watches
// a stream's context and reports its end through grpc.OnFinish, which the
// interceptor uses instead.
func BenchmarkStreamInterceptor(b *testing.B) {
	stream := &stubStream{}
	streamer := func(_ context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		stream.onFinish = stream.onFinish[:0]
		for _, o := range opts {
			if f, ok := o.(grpc.OnFinishCallOption); ok {
				stream.onFinish = append(stream.onFinish, f.OnFinish)
			}
		}
		return stream, nil
	}
	desc := &grpc.StreamDesc{ServerStreams: true}
	type open func(ctx context.Context) (grpc.ClientStream, error)
	wrap := func(cfg grpcclient.Config) open {
		ic, err := grpcclient.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ic.Close() })
		si := ic.StreamClientInterceptor()
		return func(ctx context.Context) (grpc.ClientStream, error) { return si(ctx, desc, nil, outMethod, streamer) }
	}
	cases := []struct {
		name string
		open open
	}{
		{"bare-streamer", func(ctx context.Context) (grpc.ClientStream, error) { return streamer(ctx, desc, nil, outMethod) }},
		{"bare-streamer+context.AfterFunc", func(ctx context.Context) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, nil, outMethod)
			stop := context.AfterFunc(ctx, func() {})
			stop()
			return s, err
		}},
		{"zero-config", wrap(grpcclient.Config{})},
		{"standard", wrap(grpcclient.Standard())},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var m testpb.StreamingOutputCallResponse
			for b.Loop() {
				s, err := c.open(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.RecvMsg(&m); err != io.EOF {
					b.Fatal(err)
				}
			}
		})
	}
}
