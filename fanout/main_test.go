package fanout_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/fanout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t testing.TB, cfg fanout.Config) *fanout.Fanout {
	t.Helper()
	f, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// meter is a MeterProvider whose metrics a test reads back.
type meter struct {
	*sdkmetric.MeterProvider
	r *sdkmetric.ManualReader
}

func newMeter() meter {
	r := sdkmetric.NewManualReader()
	return meter{sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)), r}
}

// sum returns the value of the counter name for the points whose
// attributes include every key=value in want.
func (m meter) sum(t testing.TB, name string, want map[string]string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if mt.Name != name {
				continue
			}
			s, ok := mt.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s: got %T, want an int64 sum", name, mt.Data)
			}
		points:
			for _, p := range s.DataPoints {
				for k, v := range want {
					if got, ok := p.Attributes.Value(attribute.Key(k)); !ok || got.AsString() != v {
						continue points
					}
				}
				total += p.Value
			}
		}
	}
	return total
}

var errBoom = errors.New("boom")
