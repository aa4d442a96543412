package discovery_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// insts returns one instance per address, with no version and weight 1.
func insts(addrs ...string) []discovery.Instance {
	out := make([]discovery.Instance, len(addrs))
	for i, a := range addrs {
		out[i] = discovery.Instance{Addr: a}
	}
	return out
}

// mustStatic returns a Static serving set as service "svc".
func mustStatic(t testing.TB, set []discovery.Instance) *discovery.Static {
	t.Helper()
	st, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": set})
	if err != nil {
		t.Fatalf("NewStatic: %v", err)
	}
	return st
}

// mustBalancer returns a Balancer of service "svc" over r, closed when the
// test ends.
func mustBalancer(t testing.TB, r discovery.Resolver, cfg discovery.BalancerConfig) *discovery.Balancer {
	t.Helper()
	b, err := discovery.NewBalancer(context.Background(), r, "svc", cfg)
	if err != nil {
		t.Fatalf("NewBalancer: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// pick picks from b and fails the test on refusal.
func pick(t testing.TB, b *discovery.Balancer, avoid string) (string, bulwark.Permit) {
	t.Helper()
	addr, p, err := b.Pick(context.Background(), "svc", avoid)
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	return addr, p
}

// pickAt picks until b offers addr and returns the Permit for addr. The
// other picks stay outstanding meanwhile, which makes their instances
// costlier to PeakEWMA, then end as Ignored, which tells b nothing.
func pickAt(t testing.TB, b *discovery.Balancer, addr string) bulwark.Permit {
	t.Helper()
	var held []bulwark.Permit
	defer func() {
		for _, p := range held {
			p.Done(bulwark.Ignored)
		}
	}()
	for range 1000 {
		got, p := pick(t, b, "")
		if got == addr {
			return p
		}
		held = append(held, p)
	}
	t.Fatalf("Pick: %s never offered", addr)
	return bulwark.Permit{}
}

// count picks n times, ending each attempt with Success, and returns how
// many went to each address.
func count(t testing.TB, b *discovery.Balancer, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		addr, p := pick(t, b, "")
		got[addr]++
		p.Done(bulwark.Success)
	}
	return got
}

// status returns the status of addr in b.
func status(t testing.TB, b *discovery.Balancer, addr string) discovery.InstanceStatus {
	t.Helper()
	for _, s := range b.Status() {
		if s.Instance.Addr == addr {
			return s
		}
	}
	t.Fatalf("Status: no instance %s", addr)
	return discovery.InstanceStatus{}
}

// newReader returns a manual reader and a provider feeding it.
func newReader(t testing.TB) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	return r, mp
}

// collect reads every data point from r, keyed by
// "<instrument>{<attributes, sorted>}".
func collect(t testing.TB, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name+"{"+encode(dp.Attributes)+"}"] = float64(dp.Value)
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					out[m.Name+"{"+encode(dp.Attributes)+"}"] = float64(dp.Value)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					out[m.Name+"{"+encode(dp.Attributes)+"}"] = dp.Value
				}
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

// still is a Resolver whose set never changes: Watch calls update never,
// so that a test hands the Balancer its sets itself (discovery.Update),
// with no watch goroutine racing it.
type still []discovery.Instance

func (s still) Resolve(context.Context, string) ([]discovery.Instance, error) {
	return s, nil
}

func (still) Watch(ctx context.Context, _ string, _ func([]discovery.Instance)) error {
	<-ctx.Done()
	return nil
}
