package retry_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newReader returns a MeterProvider and the ManualReader that reads it.
func newReader() (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)), r
}

// collect reads every metric of r.
func collect(t testing.TB, r *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: got %v, want nil", err)
	}
	return rm
}

// points returns the int64 sum data points of the metric name, by their
// attributes written "k=v,k=v" in key order. A metric with no data point
// gives an empty map.
func points(t testing.TB, r *sdkmetric.ManualReader, name string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for _, sm := range collect(t, r).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s: got data %T, want metricdata.Sum[int64]", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				got[attrs(dp.Attributes)] = dp.Value
			}
		}
	}
	return got
}

// histogram returns the count and sum of the float64 histogram name, all
// attributes together.
func histogram(t testing.TB, r *sdkmetric.ManualReader, name string) (count uint64, sum float64) {
	t.Helper()
	for _, sm := range collect(t, r).ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				t.Fatalf("%s: got data %T, want metricdata.Histogram[float64]", name, m.Data)
			}
			for _, dp := range h.DataPoints {
				count += dp.Count
				sum += dp.Sum
			}
		}
	}
	return count, sum
}

func attrs(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.Emit())
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}
