package breaker_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mustNew returns a Breaker of cfg or fails the test.
func mustNew(t testing.TB, cfg breaker.Config) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// mustNewSet returns a Set of cfg or fails the test.
func mustNewSet(t testing.TB, cfg breaker.Config) *breaker.Set {
	t.Helper()
	s, err := breaker.NewSet(cfg)
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// admit enters g on key and fails the test on refusal.
func admit(t testing.TB, g bulwark.Guard, key string) bulwark.Permit {
	t.Helper()
	p, err := g.Enter(context.Background(), key)
	if err != nil {
		t.Fatalf("Enter(%q): got %v, want admission", key, err)
	}
	return p
}

// run enters g on key and reports each outcome, one attempt per outcome.
func run(t testing.TB, g bulwark.Guard, key string, outcomes ...bulwark.Outcome) {
	t.Helper()
	for _, o := range outcomes {
		admit(t, g, key).Done(o)
	}
}

// refused enters g on key, fails the test on admission, and returns the
// refusal as an *OpenError.
func refused(t testing.TB, g bulwark.Guard, key string) *breaker.OpenError {
	t.Helper()
	p, err := g.Enter(context.Background(), key)
	if err == nil {
		p.Done(bulwark.Ignored)
		t.Fatalf("Enter(%q): admitted, want a refusal", key)
	}
	var oe *breaker.OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("Enter(%q): got %v (%T), want an *OpenError", key, err, err)
	}
	return oe
}

// repeat returns n copies of o.
func repeat(o bulwark.Outcome, n int) []bulwark.Outcome {
	out := make([]bulwark.Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// concat joins outcome lists.
func concat(lists ...[]bulwark.Outcome) []bulwark.Outcome {
	var out []bulwark.Outcome
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

const (
	F = bulwark.Failure
	S = bulwark.Success
	I = bulwark.Ignored
)

// collect reads every int64 data point from r, keyed by
// "<instrument>{<attributes, sorted>}".
func collect(t testing.TB, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]int64{}
	add := func(name string, dps []metricdata.DataPoint[int64]) {
		for _, dp := range dps {
			out[name+"{"+encode(dp.Attributes)+"}"] = dp.Value
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				add(m.Name, d.DataPoints)
			case metricdata.Gauge[int64]:
				add(m.Name, d.DataPoints)
			}
		}
	}
	return out
}

func encode(s attribute.Set) string {
	var kvs []string
	for _, kv := range s.ToSlice() {
		kvs = append(kvs, string(kv.Key)+"="+kv.Value.Emit())
	}
	sort.Strings(kvs)
	return strings.Join(kvs, ",")
}

// newReader returns a manual reader and a provider feeding it.
func newReader(t testing.TB) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	return r, mp
}
