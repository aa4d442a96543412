package fallback_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// errDown is the failure of a test double's endpoint.
var errDown = errors.New("endpoint down")

// statusError is a response status the caller reads as an error.
type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("status %d", e.code) }

// server is a loopback HTTP server that fails on purpose. It answers GET
// with 200 and a body "v<n>", n counting the requests it received, or with
// the status set by fail; while held, a request waits for release (or for
// its own end) before it is answered.
type server struct {
	srv     *httptest.Server
	hits    atomic.Int64
	status  atomic.Int64 // 0 means 200
	hold    atomic.Bool
	arrived chan struct{} // one value per held request, once it waits
	release chan struct{}
	once    sync.Once
}

func newServer(t testing.TB) *server {
	t.Helper()
	s := &server{arrived: make(chan struct{}, 1024), release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.hits.Add(1)
		if s.hold.Load() {
			s.arrived <- struct{}{}
			select {
			case <-s.release:
			case <-r.Context().Done():
				return
			}
		}
		if code := s.status.Load(); code != 0 {
			w.WriteHeader(int(code))
			return
		}
		fmt.Fprintf(w, "v%d", n)
	}))
	t.Cleanup(func() {
		s.unhold()
		s.srv.Close()
	})
	return s
}

// fail makes the server answer code (0: 200 again).
func (s *server) fail(code int) { s.status.Store(int64(code)) }

// unhold releases every held request, for good.
func (s *server) unhold() { s.once.Do(func() { close(s.release) }) }

// get is the primary call: GET the server, a 4xx or 5xx being an error.
func (s *server) get(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL, nil)
	if err != nil {
		return "", err
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode >= 400 {
		return "", &statusError{resp.StatusCode}
	}
	return string(b), nil
}

// mustStack returns the Stack of cfg or fails the test.
func mustStack(t testing.TB, cfg bulwark.Config) *bulwark.Stack {
	t.Helper()
	s, err := bulwark.New(cfg)
	if err != nil {
		t.Fatalf("bulwark.New: %v", err)
	}
	return s
}

// mustPipeline returns the Pipeline of cfg or fails the test.
func mustPipeline[T any](t testing.TB, cfg bulwark.PipelineConfig[T]) *bulwark.Pipeline[T] {
	t.Helper()
	p, err := bulwark.NewPipeline(cfg)
	if err != nil {
		t.Fatalf("bulwark.NewPipeline: %v", err)
	}
	return p
}

// mustCache returns the Cache of cfg or fails the test.
func mustCache[T any](t testing.TB, cfg fallback.CacheConfig[T]) *fallback.Cache[T] {
	t.Helper()
	c, err := fallback.NewCache(cfg)
	if err != nil {
		t.Fatalf("NewCache: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustValue returns the Value of cfg or fails the test.
func mustValue[T any](t testing.TB, cfg fallback.ValueConfig[T]) *fallback.Value[T] {
	t.Helper()
	v, err := fallback.NewValue(cfg)
	if err != nil {
		t.Fatalf("NewValue: %v", err)
	}
	return v
}

// mustFunc returns the Func of cfg or fails the test.
func mustFunc[T any](t testing.TB, cfg fallback.FuncConfig[T]) *fallback.Func[T] {
	t.Helper()
	f, err := fallback.NewFunc(cfg)
	if err != nil {
		t.Fatalf("NewFunc: %v", err)
	}
	return f
}

// kind is one of the three fallbacks, built fresh for a test, with the
// answer it gives instead of a failure once primed (a Cache must have
// stored that answer first: prime runs one successful call).
type kind struct {
	name   string
	source fallback.Source
	build  func(t testing.TB) bulwark.Fallback[string]
}

// kinds are the three fallbacks; each answers a failure with "fallback"
// once the call succeeded with "fallback" (only the Cache needs that).
var kinds = []kind{
	{"value", fallback.SourceValue, func(t testing.TB) bulwark.Fallback[string] {
		return mustValue(t, fallback.ValueConfig[string]{Value: "fallback"})
	}},
	{"func", fallback.SourceFunc, func(t testing.TB) bulwark.Fallback[string] {
		return mustFunc(t, fallback.FuncConfig[string]{Func: func(context.Context, string, error) (string, error) {
			return "fallback", nil
		}})
	}},
	{"cache", fallback.SourceCacheStale, func(t testing.TB) bulwark.Fallback[string] {
		c := mustCache(t, fallback.CacheConfig[string]{})
		c.Store(context.Background(), "k", "fallback")
		return c
	}},
}

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
