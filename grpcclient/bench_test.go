package grpcclient_test

import (
	"context"
	"errors"
	"io"
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

// variant is one way of making the same call in a paired benchmark.
type variant struct {
	name    string
	client  testpb.TestServiceClient
	timeout bool // under a bare context.WithTimeout of 10s
}

// paired makes, in every iteration, one call of each variant against the
// same loopback server, timing each, in an order that rotates so that none
// always goes first. Every variant has a ClientConn of its own, so that
// each call finds its connection as idle as the others do (alternating
// connections costs more than reusing one: a variant sharing the bare
// call's connection would look cheaper than it is). It returns the median
// of each variant.
func paired(b *testing.B, call func(ctx context.Context, c testpb.TestServiceClient) error, vs []variant) []float64 {
	times := make([][]time.Duration, len(vs))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		for k := range vs {
			j := (i + k) % len(vs)
			start := time.Now()
			cctx, cancel := ctx, context.CancelFunc(func() {})
			if vs[j].timeout {
				cctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			}
			if err := call(cctx, vs[j].client); err != nil {
				b.Fatal(err)
			}
			cancel()
			times[j] = append(times[j], time.Since(start))
		}
		i++
	}
	meds := make([]float64, len(vs))
	for j := range vs {
		meds[j] = median(times[j])
	}
	return meds
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

// report reports the medians of paired's three standard variants (bare,
// bare context.WithTimeout, Standard interceptors) and what each adds to
// the bare call; the ratio is the figure of merit: the stack's added
// latency against what a bare context.WithTimeout adds in the same run.
func report(b *testing.B, meds []float64) {
	mb, mt, ms := meds[0], meds[1], meds[2]
	b.ReportMetric(mb, "bare-ns")
	b.ReportMetric(mt-mb, "timeout-added-ns")
	b.ReportMetric(ms-mb, "standard-added-ns")
	if mt > mb {
		b.ReportMetric((ms-mb)/(mt-mb), "standard/timeout")
	}
	b.ReportMetric(0, "ns/op") // the medians above are the result
}

func unaryCall(req *testpb.SimpleRequest) func(context.Context, testpb.TestServiceClient) error {
	return func(ctx context.Context, c testpb.TestServiceClient) error {
		_, err := c.UnaryCall(ctx, req)
		return err
	}
}

// BenchmarkPaired makes, in every iteration, one bare unary call, one
// under a bare context.WithTimeout and one through the Standard
// interceptors (which send an attempt deadline too), against the same
// loopback server (see paired). It reports the medians and what each adds
// to the bare call: a ratio from one run, so the machine's noise hits all
// three alike. Run with -benchtime=20000x or more.
func BenchmarkPaired(b *testing.B) {
	srv := newServer(b, nil)
	wrapped, _ := dial(b, srv.addr, grpcclient.Standard())
	report(b, paired(b, unaryCall(request("ok", 0)), []variant{
		{"bare", bareClient(b, srv.addr), false},
		{"timeout", bareClient(b, srv.addr), true},
		{"standard", wrapped, false},
	}))
}

// BenchmarkPairedBreakdown is BenchmarkPaired for each policy of Standard
// alone, to tell what each adds to a bare call.
func BenchmarkPairedBreakdown(b *testing.B) {
	srv := newServer(b, nil)
	vs := []variant{{"bare", bareClient(b, srv.addr), false}, {"timeout", bareClient(b, srv.addr), true}}
	for _, c := range []struct {
		name string
		cfg  grpcclient.Config
	}{
		{"zero-config", grpcclient.Config{}},
		{"attempt-deadline", grpcclient.Config{AttemptTimeout: 10 * time.Second}},
		{"breaker", grpcclient.Config{Breaker: &breaker.Config{}}},
		{"bulkhead", grpcclient.Config{Bulkhead: &bulkhead.Config{Limit: 256}}},
		{"standard", grpcclient.Standard()},
	} {
		client, _ := dial(b, srv.addr, c.cfg)
		vs = append(vs, variant{c.name, client, false})
	}
	vs = append(vs, variant{"floor-by-hand", bareClient(b, srv.addr, grpc.WithUnaryInterceptor(floorInterceptor())), false})
	meds := paired(b, unaryCall(request("ok", 0)), vs)
	b.ReportMetric(meds[0], "bare-ns")
	for j := 1; j < len(vs); j++ {
		b.ReportMetric(meds[j]-meds[0], vs[j].name+"-added-ns")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPairedStream is BenchmarkPaired for a server-streaming call of
// one message, read to io.EOF; the Standard interceptors bound streams by
// no deadline of theirs, but hold a breaker and a bulkhead permit for the
// stream's life.
func BenchmarkPairedStream(b *testing.B) {
	srv := newServer(b, nil)
	wrapped, _ := dial(b, srv.addr, grpcclient.Standard())
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
	report(b, paired(b, call, []variant{
		{"bare", bareClient(b, srv.addr), false},
		{"timeout", bareClient(b, srv.addr), true},
		{"standard", wrapped, false},
	}))
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
