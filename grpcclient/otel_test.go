package grpcclient_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// bulwark's interceptors and otelgrpc's stats handler on one ClientConn:
// each attempt gets bulwark's span and, under it, otelgrpc's client span; bulwark's metrics and otelgrpc's land on the same
// MeterProvider.
func TestWithOtelgrpc(t *testing.T) {
	srv := newServer(t, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	cfg := grpcclient.Standard()
	cfg.MeterProvider, cfg.TracerProvider = mp, tp
	conn, _ := dialConn(t, srv.addr, cfg,
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithMeterProvider(mp))))
	client := testpb.NewTestServiceClient(conn)

	ctx, parent := tp.Tracer("test").Start(context.Background(), "caller")
	if _, err := client.UnaryCall(ctx, request("plain", codes.OK)); err != nil {
		t.Fatal(err)
	}
	_, err := client.UnaryCall(ctx, request("", codes.Unavailable))
	mustCode(t, err, codes.Unavailable)
	stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = stream.Recv()
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	parent.End()

	spans := rec.Ended()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	var attempts []sdktrace.ReadOnlySpan
	rpcs := 0
	for _, s := range spans {
		switch s.Name() {
		case "caller":
		case "bulwark.grpc.attempt":
			if s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("attempt span's parent is %v, want the caller's span", s.Parent().SpanID())
			}
			attempts = append(attempts, s)
		default:
			rpcs++
			if p, ok := byID[s.Parent().SpanID()]; !ok || p.Name() != "bulwark.grpc.attempt" {
				t.Errorf("otelgrpc's span %q is not a child of bulwark's attempt span", s.Name())
			}
			if !strings.Contains(s.Name(), "grpc.testing.TestService/") {
				t.Errorf("got otelgrpc span %q, want the RPC's name", s.Name())
			}
		}
	}
	if len(attempts) != 3 || rpcs != 3 {
		t.Fatalf("got %d attempt spans and %d otelgrpc spans, want 3 and 3", len(attempts), rpcs)
	}
	want := []map[attribute.Key]string{
		{"rpc.system": "grpc", "rpc.service": testService, "rpc.method": "UnaryCall", "rpc.grpc.status_code": "0", "bulwark.outcome": "success"},
		{"rpc.grpc.status_code": "14", "bulwark.outcome": "failure", "error.type": "Unavailable"},
		{"rpc.method": "StreamingOutputCall", "rpc.grpc.status_code": "0", "bulwark.outcome": "success"},
	}
	for i, s := range attempts {
		got := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value.Emit()
		}
		for k, v := range want[i] {
			if got[k] != v {
				t.Errorf("attempt %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names[m.Name] = true
		}
	}
	for _, n := range []string{"bulwark.breaker.state", "bulwark.bulkhead.in_flight"} {
		if !names[n] {
			t.Errorf("no metric %s among %v", n, keys(names))
		}
	}
	if !names["rpc.client.call.duration"] && !names["rpc.client.duration"] {
		t.Errorf("no otelgrpc duration metric among %v", keys(names))
	}
}

// Hedged attempts each get a span: the loser's outcome is ignored, and its
// cancellation is not marked as an error.
func TestHedgeSpans(t *testing.T) {
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if srv.calls.Load() == 1 {
			return blockUntilDone(ctx, req)
		}
		return echo(req)
	}
	rec := tracetest.NewSpanRecorder()
	ended := &endSignal{ch: make(chan struct{}, 8)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSpanProcessor(ended))
	defer tp.Shutdown(context.Background())
	cfg := hedged(5 * time.Millisecond)
	cfg.TracerProvider = tp
	client, _ := dial(t, srv.addr, cfg)
	ctx, parent := tp.Tracer("test").Start(context.Background(), "caller")
	if _, err := client.UnaryCall(ctx, request("x", codes.OK)); err != nil {
		t.Fatal(err)
	}
	parent.End()
	// The attempt that reached the server first blocks until it is
	// cancelled: usually the first, but on a busy machine the hedge may
	// overtake it, and then the first wins and the hedge's span ends on
	// its own goroutine, before the call returns (the call waits for its
	// attempts). Both have ended; the wait is a bound.
	for range 2 {
		select {
		case <-ended.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the attempts' spans did not both end")
		}
	}
	got := map[string]string{}
	for _, s := range rec.Ended() {
		if s.Name() != "bulwark.grpc.attempt" {
			continue
		}
		n, o := "0", ""
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "bulwark.attempt":
				n = kv.Value.Emit()
			case "bulwark.outcome":
				o = kv.Value.Emit()
			}
		}
		got[n] = o
		if o == "ignored" && s.Status().Code != otelcodes.Unset {
			t.Errorf("the cancelled hedge's span has status %v", s.Status())
		}
	}
	if len(got) != 2 || !(got["0"] == "ignored" && got["1"] == "success" || got["0"] == "success" && got["1"] == "ignored") {
		t.Fatalf("got outcomes by attempt %v, want attempts 0 and 1, one ignored (the loser) and one a success", got)
	}
}

// endSignal is a SpanProcessor that signals the end of every attempt span.
type endSignal struct {
	sdktrace.SpanProcessor
	ch chan struct{}
}

func (e *endSignal) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *endSignal) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.Name() == "bulwark.grpc.attempt" {
		e.ch <- struct{}{}
	}
}
func (e *endSignal) Shutdown(context.Context) error   { return nil }
func (e *endSignal) ForceFlush(context.Context) error { return nil }

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A user's callback that panics — the Classifier at the end of a unary
// call, the Key of a stream — goes on to the caller, and the attempt's
// span is ended all the same: a span never ended is never exported, and
// the spans of the RPC under it lose their parent.
func TestSpansEndWhenUserCodePanics(t *testing.T) {
	srv := newServer(t, nil)
	tests := []struct {
		name string
		cfg  grpcclient.Config
		call func(ctx context.Context, client testpb.TestServiceClient) error
	}{
		{"unary call, Classify",
			grpcclient.Config{Classify: func(context.Context, error) bulwark.Outcome { panic(errTest) }},
			func(ctx context.Context, client testpb.TestServiceClient) error {
				_, err := client.UnaryCall(ctx, request("", codes.OK))
				return err
			}},
		{"unary call, OnStateChange while admitting",
			grpcclient.Config{Breaker: &breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Millisecond,
				OnStateChange: func(e breaker.Event) {
					if e.To == breaker.HalfOpen { // delivered as the breaker admits a trial
						panic(errTest)
					}
				}}},
			func(ctx context.Context, client testpb.TestServiceClient) error {
				_, err := client.UnaryCall(ctx, request("", codes.Unavailable)) // opens the breaker
				for end := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(end); {
					_, err = client.UnaryCall(ctx, request("", codes.OK)) // refused until half-open
				}
				return err
			}},
		{"stream, Key",
			grpcclient.Config{Key: func(*grpc.ClientConn, string) string { panic(errTest) }},
			func(ctx context.Context, client testpb.TestServiceClient) error {
				_, err := client.FullDuplexCall(ctx)
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			tt.cfg.TracerProvider = tp
			client, _ := dial(t, srv.addr, tt.cfg)
			ctx, parent := tp.Tracer("test").Start(wait(t), "caller")
			func() {
				defer func() {
					if r := recover(); r != errTest {
						t.Fatalf("recovered %v, want the callback's panic", r)
					}
				}()
				err := tt.call(ctx, client)
				t.Fatalf("the call returned %v, want the callback's panic", err)
			}()
			parent.End()
			if started, ended := len(rec.Started()), len(rec.Ended()); started != ended {
				t.Fatalf("%d spans started, %d ended, want every one ended", started, ended)
			}
		})
	}
}
