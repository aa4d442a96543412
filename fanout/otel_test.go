package fanout_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/hedge"
)

func spanAttr(s sdktrace.ReadOnlySpan, k string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(k) {
			return kv.Value.Emit()
		}
	}
	return ""
}

// One span per branch, under the caller's span, with the branch's name,
// index and outcome; none when the caller's span is not recording.
func TestBranchSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	f := mustNew(t, fanout.Config{TracerProvider: tp, Name: "profile", Hedge: hedge.Config{Delay: time.Hour}})

	run := func(ctx context.Context) {
		g := f.Gather()
		fanout.Add(g, "users", nil, func(context.Context) (string, error) { return "ada", nil })
		fanout.Add(g, "orders", nil, func(context.Context) (int, error) { return 0, errBoom })
		_ = g.Run(ctx)
		_, _ = fanout.Quorum(ctx, f, 1, fanout.Branch[int]{Name: "q", Call: func(context.Context) (int, error) { return 1, nil }})
		_, _ = fanout.First(ctx, f, fanout.Branch[int]{Name: "f0", Call: func(context.Context) (int, error) { return 1, nil }},
			fanout.Branch[int]{Name: "f1", Call: func(context.Context) (int, error) { return 2, nil }})
	}

	run(context.Background())
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("spans without a recording parent: got %d, want 0", n)
	}

	ctx, parent := tp.Tracer("test").Start(context.Background(), "handler")
	run(ctx)
	parent.End()

	type row struct{ op, branch, index, outcome, key string }
	var got []row
	for _, s := range rec.Ended() {
		if s.Name() != "bulwark.fanout.branch" {
			continue
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %s: parent %v, want the handler's span", spanAttr(s, "bulwark.fanout.branch"), s.Parent().SpanID())
		}
		r := row{spanAttr(s, "bulwark.fanout.op"), spanAttr(s, "bulwark.fanout.branch"), spanAttr(s, "bulwark.fanout.index"), spanAttr(s, "bulwark.fanout.outcome"), spanAttr(s, "bulwark.key")}
		got = append(got, r)
		if wantErr := r.outcome == "failure"; (s.Status().Code == codes.Error) != wantErr {
			t.Errorf("span %v: status %v, want error %v", r, s.Status().Code, wantErr)
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i].branch < got[j].branch })
	want := []row{
		{"first", "f0", "0", "success", "profile"},
		{"gather", "orders", "1", "failure", "profile"},
		{"quorum", "q", "0", "success", "profile"},
		{"gather", "users", "0", "success", "profile"},
	}
	if len(got) != len(want) {
		t.Fatalf("spans: got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("span %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// Metrics carry the op, the outcome and the Fanout's name; a healthy
// Gather counts its branches, not a partial call.
func TestMetrics(t *testing.T) {
	m := newMeter()
	f := mustNew(t, fanout.Config{MeterProvider: m, Name: "profile"})
	for _, fail := range []bool{false, true} {
		g := f.Gather()
		fanout.Add(g, "a", nil, func(context.Context) (int, error) { return 1, nil })
		fanout.Add(g, "b", nil, func(context.Context) (int, error) {
			if fail {
				return 0, errBoom
			}
			return 2, nil
		})
		_ = g.Run(context.Background())
	}
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		want  int64
	}{
		{"bulwark.fanout.branches", map[string]string{"bulwark.key": "profile", "bulwark.fanout.op": "gather", "bulwark.fanout.outcome": "success"}, 3},
		{"bulwark.fanout.branches", map[string]string{"bulwark.fanout.outcome": "failure"}, 1},
		{"bulwark.fanout.partial", map[string]string{"bulwark.key": "profile", "bulwark.fanout.op": "gather"}, 1},
	} {
		if got := m.sum(t, tc.name, tc.attrs); got != tc.want {
			t.Errorf("%s %v: got %d, want %d", tc.name, tc.attrs, got, tc.want)
		}
	}
}
