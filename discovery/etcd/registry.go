package etcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark/discovery"
)

// ErrClosed reports a call on a Registry that Close has closed, or a
// Watch that Close ended.
var ErrClosed = errors.New("etcd: registry closed")

// Registry is a discovery.Resolver and a discovery.Registrar on etcd.
// Register keeps an instance under a lease that a keepalive renews, so that
// it disappears when its process dies; Resolve and Watch read the instances
// of a service, Watch following every change and riding out etcd outages
// on the last set it knew. It is safe for concurrent use. Build it with
// NewRegistry; the zero Registry is not usable.
type Registry struct {
	cfg    Config
	client *clientv3.Client
	owned  bool // the Registry made client, and closes it
	ttl    int64
	m      *instruments
	reg    metric.Registration

	// ctx is the Registry's lifetime, not a request's: Close cancels it to
	// stop every keepalive and watch the Registry runs.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // running Register goroutines, Watch and Resolve calls
	watches atomic.Uint64  // Watch calls so far, naming their gRPC streams

	mu       sync.Mutex
	closed   bool
	services map[string]*service
	// regs are the instances registered, by key; a nil registration is
	// one being registered.
	regs map[string]*registration
}

var (
	_ discovery.Resolver  = (*Registry)(nil)
	_ discovery.Registrar = (*Registry)(nil)
)

// NewRegistry validates cfg and returns its Registry. A nonsense field is
// an error naming it; so is a failure to make a client of cfg.Endpoints,
// or, when cfg.DialTimeout is set, etcd not answering within it. Without
// DialTimeout it does not wait for etcd. Close releases what it holds.
func NewRegistry(cfg Config) (*Registry, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	m, err := newInstruments(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:      cfg,
		client:   cfg.Client,
		ttl:      int64(cfg.LeaseTTL / time.Second),
		m:        m,
		services: make(map[string]*service),
		regs:     make(map[string]*registration),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if r.client == nil {
		if r.client, err = clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cfg.DialTimeout,
			// Without pings, a connection that died silently (a peer
			// gone, packets dropped) looks alive until TCP gives up,
			// minutes later. etcd refuses pings closer than 5s apart.
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 5 * time.Second,
		}); err != nil {
			r.cancel()
			return nil, fmt.Errorf("etcd: connecting to %q: %w", cfg.Endpoints, err)
		}
		r.owned = true
		if cfg.DialTimeout > 0 {
			if err := r.ping(cfg.DialTimeout); err != nil {
				r.cancel()
				r.client.Close()
				return nil, err
			}
		}
	}
	if r.reg, err = m.meter.RegisterCallback(r.observe, m.staleness, m.instances); err != nil {
		r.cancel()
		if r.owned {
			r.client.Close()
		}
		return nil, fmt.Errorf("etcd: registering metric callback: %w", err)
	}
	return r, nil
}

// ping waits up to d for etcd to answer a read that needs its leader.
func (r *Registry) ping(d time.Duration) error {
	ctx, cancel := context.WithTimeout(r.ctx, d)
	defer cancel()
	if _, err := r.client.Get(ctx, r.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd: no answer from %q within Config.DialTimeout (%v): %w", r.cfg.Endpoints, d, err)
	}
	return nil
}

// Client returns the etcd client the Registry uses.
func (r *Registry) Client() *clientv3.Client { return r.client }

// Close deregisters every instance still registered (revoking its lease,
// each revocation bounded by Config.RequestTimeout), ends every Watch
// (which returns ErrClosed), waits for the goroutines the Registry started,
// unregisters its metric callback and closes the client it made. It
// returns the revocation errors; an instance whose lease could not be
// revoked disappears when its lease expires. Calls after the first return
// nil.
func (r *Registry) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	regs := make([]*registration, 0, len(r.regs))
	for _, g := range r.regs {
		if g != nil {
			regs = append(regs, g)
		}
	}
	r.mu.Unlock()

	r.cancel()
	r.wg.Wait()
	// Close has no caller's context; the revocations get a fresh one,
	// bounded like every other request.
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RequestTimeout)
	defer cancel()
	errs := make([]error, 0, len(regs)+2)
	for _, g := range regs {
		errs = append(errs, g.deregister(ctx))
	}
	errs = append(errs, r.reg.Unregister())
	if r.owned {
		errs = append(errs, r.client.Close())
	}
	return errors.Join(errs...)
}

// enter counts a call or goroutine that Close must wait for, unless the
// Registry is closed.
func (r *Registry) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// request returns ctx bounded by Config.RequestTimeout.
func (r *Registry) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.RequestTimeout)
}

// key returns the key prefix of service's instances.
func (r *Registry) key(service string) string { return r.cfg.Prefix + service + "/" }

// service returns the state of name, made on first use. Services are few
// and long-lived, so their states are kept for the Registry's life.
func (r *Registry) service(name string) *service {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.services[name]
	if s == nil {
		s = newService(name)
		r.services[name] = s
	}
	return s
}

// watching returns the state of name, counting one more watch of it.
func (r *Registry) watching(name string) *service {
	s := r.service(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.watchers == 0 && s.confirmed.Load() == 0 {
		// Never confirmed: staleness counts from the first try.
		s.confirm(time.Now())
	}
	s.watchers++
	return s
}

// unwatching counts one watch of s fewer.
func (r *Registry) unwatching(s *service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.watchers--
}

// observe reports the gauges of the watched services.
func (r *Registry) observe(_ context.Context, o metric.Observer) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.services {
		if s.watchers == 0 {
			continue
		}
		o.ObserveFloat64(r.m.staleness, now.Sub(time.Unix(0, s.confirmed.Load())).Seconds(), s.attrs)
		o.ObserveInt64(r.m.instances, s.count.Load(), s.attrs)
	}
	return nil
}

// service is what a Registry knows of one service.
type service struct {
	name     string
	attrs    metric.MeasurementOption
	rewatch  [reasons]metric.AddOption
	watchers int // guarded by Registry.mu

	confirmed atomic.Int64 // UnixNano when etcd last confirmed a watch's set
	count     atomic.Int64 // instances in the last set

	mu   sync.Mutex
	last []discovery.Instance // the last set known; never modified, nil if none
	rev  int64                // the etcd revision of last
}

func newService(name string) *service {
	svc := attribute.String("bulwark.key", name)
	s := &service{name: name, attrs: metric.WithAttributeSet(attribute.NewSet(svc))}
	for r := range reasons {
		s.rewatch[r] = metric.WithAttributeSet(attribute.NewSet(svc, attribute.String("bulwark.discovery.reason", reason(r).String())))
	}
	return s
}

// confirm records that etcd confirmed a set of s as current at t.
func (s *service) confirm(t time.Time) {
	n := t.UnixNano()
	for {
		old := s.confirmed.Load()
		if old >= n || s.confirmed.CompareAndSwap(old, n) {
			return
		}
	}
}

// store records list, read at revision rev, as the last set known unless a
// later one is known already. list must not be modified afterwards.
func (s *service) store(list []discovery.Instance, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && rev < s.rev {
		return
	}
	s.last, s.rev = list, rev
	s.count.Store(int64(len(list)))
}

// known returns the last set known, or nil.
func (s *service) known() []discovery.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// reason is why a watch of etcd ended and was started again.
type reason int

const (
	reasonCompacted reason = iota // its revision was compacted away
	reasonError                   // etcd cancelled it (lost leader, ...)
	reasonClosed                  // its channel closed
	reasonSilent                  // etcd stopped confirming it
	reasons
)

func (r reason) String() string {
	switch r {
	case reasonCompacted:
		return "compacted"
	case reasonError:
		return "error"
	case reasonSilent:
		return "silent"
	default:
		return "closed"
	}
}

// instruments are the Registry's metrics.
type instruments struct {
	meter           metric.Meter
	staleness       metric.Float64ObservableGauge
	instances       metric.Int64ObservableGauge
	invalid         metric.Int64Counter
	rewatches       metric.Int64Counter
	reregistrations metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &instruments{meter: mp.Meter("github.com/bulwarkrpc/bulwark/discovery/etcd")}
	var err error
	if m.staleness, err = m.meter.Float64ObservableGauge("bulwark.discovery.etcd.staleness",
		metric.WithDescription("Time since etcd last confirmed the set of instances a watch holds."),
		metric.WithUnit("s")); err != nil {
		return nil, fmt.Errorf("etcd: creating instruments: %w", err)
	}
	if m.instances, err = m.meter.Int64ObservableGauge("bulwark.discovery.etcd.instances",
		metric.WithDescription("Instances in the last set known of a watched service."),
		metric.WithUnit("{instance}")); err != nil {
		return nil, fmt.Errorf("etcd: creating instruments: %w", err)
	}
	if m.invalid, err = m.meter.Int64Counter("bulwark.discovery.etcd.invalid_values",
		metric.WithDescription("Stored values skipped because they are no readable instance, counted each time they are read."),
		metric.WithUnit("{value}")); err != nil {
		return nil, fmt.Errorf("etcd: creating instruments: %w", err)
	}
	if m.rewatches, err = m.meter.Int64Counter("bulwark.discovery.etcd.rewatches",
		metric.WithDescription("Watches of etcd that ended and were started again."),
		metric.WithUnit("{watch}")); err != nil {
		return nil, fmt.Errorf("etcd: creating instruments: %w", err)
	}
	if m.reregistrations, err = m.meter.Int64Counter("bulwark.discovery.etcd.reregistrations",
		metric.WithDescription("Registered instances whose lease was lost and that were registered again."),
		metric.WithUnit("{registration}")); err != nil {
		return nil, fmt.Errorf("etcd: creating instruments: %w", err)
	}
	return m, nil
}

const (
	backoffBase = 50 * time.Millisecond
	backoffCap  = 2 * time.Second
)

// backoff spaces the tries of a loop that keeps failing: the wait before
// try n+1 is random in [d/2, d], d = min(backoffCap, backoffBase·2ⁿ), so
// that clients that lost etcd together do not come back together.
type backoff struct {
	n     int
	timer *time.Timer
}

// wait waits before the next try and reports whether ctx is still live.
func (b *backoff) wait(ctx context.Context) bool {
	d := backoffCap
	if b.n < 16 {
		d = min(backoffCap, backoffBase<<b.n)
	}
	b.n++
	d = d/2 + rand.N(d/2+1)
	if b.timer == nil {
		b.timer = time.NewTimer(d)
	} else {
		b.timer.Reset(d)
	}
	select {
	case <-b.timer.C:
		return true
	case <-ctx.Done():
		b.timer.Stop()
		return false
	}
}

// reset starts the backoff over, after a success.
func (b *backoff) reset() { b.n = 0 }

// stop releases the timer.
func (b *backoff) stop() {
	if b.timer != nil {
		b.timer.Stop()
	}
}
