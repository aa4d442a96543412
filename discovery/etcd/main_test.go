package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/discovery/etcd"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// patience bounds every wait for something that must happen: far longer
// than it takes even on a loaded machine, so that a timeout means a bug.
const patience = 30 * time.Second

// server is an embedded etcd, reached through a proxy that can cut every
// connection. Stopping an etcd whose clients hold watch streams waits 5s
// for them (its gRPC graceful stop) before it closes them; stop cuts the
// connections first, as a crash would, so that it takes milliseconds.
type server struct {
	cfg   *embed.Config
	e     *embed.Etcd
	proxy *proxy
	// Endpoint is where clients reach it, through the proxy.
	Endpoint string
	// Direct is its own client address, bypassing the proxy.
	Direct string
}

// startServer starts an etcd with its data in dir, on free loopback ports.
func startServer(dir string) (*server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cu := url.URL{Scheme: "http", Host: ports[0]}
	pu := url.URL{Scheme: "http", Host: ports[1]}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// A single member elects itself within a few ticks: small ticks start
	// it in milliseconds.
	cfg.TickMs, cfg.ElectionMs = 10, 50
	cfg.UnsafeNoFsync = true
	s := &server{cfg: cfg, Direct: ports[0]}
	if err := s.Start(); err != nil {
		return nil, err
	}
	if s.proxy, err = newProxy(ports[0]); err != nil {
		s.e.Close()
		return nil, err
	}
	s.Endpoint = s.proxy.Addr()
	return s, nil
}

// newServer starts an etcd for t, stopped when t ends.
func newServer(t testing.TB) *server {
	t.Helper()
	s, err := startServer(t.TempDir())
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// freePorts returns n loopback addresses with free ports. The ports are
// free when it returns; nothing keeps another process from taking one
// before etcd does, which on a test machine is rare enough.
func freePorts(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// Start starts (or restarts, on the same data and ports) the etcd and lets
// clients through.
func (s *server) Start() error {
	s.cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(s.cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(patience):
		e.Close()
		return errors.New("etcd not ready")
	}
	s.e = e
	if s.proxy != nil {
		s.proxy.Heal()
	}
	return nil
}

// Stop cuts every client off and stops the etcd.
func (s *server) Stop() {
	if s.e == nil {
		return
	}
	s.proxy.Cut()
	s.e.Close()
	s.e = nil
}

// Close stops the etcd and the proxy.
func (s *server) Close() {
	s.Stop()
	s.proxy.Close()
}

// proxy forwards TCP connections to target until Cut, which closes them
// and refuses new ones until Heal.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the proxy's address.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			u.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, u) })
		p.wg.Go(func() { p.pipe(u, c) })
	}
}

// pipe copies from src to dst, then closes both.
func (p *proxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Heal accepts connections again.
func (p *proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops the proxy and waits for its goroutines.
func (p *proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// newClient returns a client of endpoint, closed when t ends, that
// reconnects within a fraction of a second of etcd coming back (gRPC's
// default waits up to two minutes) and logs nothing.
func newClient(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{endpoint},
		Logger:    zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatalf("clientv3.New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fastConfig is a Config for tests: short lease, short timeouts, frequent
// confirmations.
func fastConfig(c *clientv3.Client, mp metric.MeterProvider) etcd.Config {
	return etcd.Config{
		Client:           c,
		LeaseTTL:         time.Second,
		RequestTimeout:   500 * time.Millisecond,
		ProgressInterval: 50 * time.Millisecond,
		MeterProvider:    mp,
	}
}

// newRegistry returns a Registry of cfg, closed when t ends.
func newRegistry(t testing.TB, cfg etcd.Config) *etcd.Registry {
	t.Helper()
	r, err := etcd.NewRegistry(cfg)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// newReader returns a MeterProvider and the ManualReader that reads it.
func newReader() (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(r)), r
}

// metricPoints collects r and returns the data points of the metric name,
// by their attributes written "k=v,k=v" in key order, as float64.
func metricPoints(t testing.TB, r *sdkmetric.ManualReader, name string) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: got %v, want nil", err)
	}
	got := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					got[attrs(dp.Attributes)] = float64(dp.Value)
				}
			case metricdata.Gauge[int64]:
				for _, dp := range d.DataPoints {
					got[attrs(dp.Attributes)] = float64(dp.Value)
				}
			case metricdata.Gauge[float64]:
				for _, dp := range d.DataPoints {
					got[attrs(dp.Attributes)] = dp.Value
				}
			default:
				t.Fatalf("%s: got data %T, want an int64 sum or a gauge", name, m.Data)
			}
		}
	}
	return got
}

func attrs(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, string(a.Key)+"="+a.Value.Emit())
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// watch is a Watch running on its own goroutine for a test.
type watch struct {
	cancel context.CancelFunc
	done   chan error
	notify chan struct{} // a buffer of one: an update came

	mu      sync.Mutex
	last    []discovery.Instance
	updates int
	empties int // updates with no instance
}

// startWatch starts r.Watch(service) until t ends.
func startWatch(t testing.TB, r *etcd.Registry, service string) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{cancel: cancel, done: make(chan error, 1), notify: make(chan struct{}, 1)}
	go func() {
		w.done <- r.Watch(ctx, service, func(set []discovery.Instance) {
			w.mu.Lock()
			w.last = set
			w.updates++
			if len(set) == 0 {
				w.empties++
			}
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { w.Stop(t) })
	return w
}

// Stop ends the Watch and returns what it returned.
func (w *watch) Stop(t testing.TB) error {
	w.cancel()
	select {
	case err, ok := <-w.done:
		if ok {
			close(w.done)
		}
		return err
	case <-time.After(patience):
		t.Fatalf("Watch did not return %v after its context ended", patience)
		return nil
	}
}

// Until waits for a set that ok accepts and returns it.
func (w *watch) Until(t testing.TB, desc string, ok func([]discovery.Instance) bool) []discovery.Instance {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		w.mu.Lock()
		last, n := w.last, w.updates
		w.mu.Unlock()
		if n > 0 && ok(last) {
			return last
		}
		select {
		case <-w.notify:
		case <-timer.C:
			t.Fatalf("waited %v for %s; got last %v after %d updates", patience, desc, last, n)
		}
	}
}

// Counts returns how many updates came, and how many were empty.
func (w *watch) Counts() (updates, empties int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.updates, w.empties
}

// addrs returns the addresses of set.
func addrs(set []discovery.Instance) []string {
	var a []string
	for _, i := range set {
		a = append(a, i.Addr)
	}
	return a
}

// is returns a test of a set holding exactly the addresses want.
func is(want ...string) func([]discovery.Instance) bool {
	return func(set []discovery.Instance) bool {
		return slices.Equal(addrs(set), want) || (len(set) == 0 && len(want) == 0)
	}
}

func errorString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", err)
}
