package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"go.opentelemetry.io/otel/metric"
)

// Balancer spreads the attempts of calls to one service over its
// instances, as a Resolver lists them: it is a bulwark.Picker (and so a
// bulwark.Guard), the balancer pick of a bulwark.Stack. It picks only
// instances that are valid, of a compatible API version
// (BalancerConfig.RequireVersion) and not ejected (see Ejection), by its
// Policy; it learns from each attempt's outcome through the Permit.
//
// A Balancer watches the Resolver on a goroutine of its own until Close.
// Picks read an immutable snapshot of the instances, swapped whole on each
// change, and take no lock. A Balancer is safe for concurrent use. Build it
// with NewBalancer.
type Balancer struct {
	cfg     *settings
	service string
	snap    atomic.Pointer[snapshot]
	epoch   time.Time // origin of since()
	refused atomic.Int64

	// mu guards the set of instances and the ejection state of their
	// endpoints; picks never take it.
	mu        sync.Mutex
	endpoints map[string]*endpoint // the eligible instances, by address
	members   []member             // the last set, in its order
	ejectedN  int                  // endpoints ejected
	retired   [3]uint64            // attempts ended on the endpoints removed so far: the totals only grow

	wake     chan struct{} // tells maintain that an ejection began
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	watchErr error // what Watch returned; read after wg.Wait

	closeOnce sync.Once
	closeErr  error

	inst instruments
}

// member is one instance of the last set: eligible (ep) or not (err).
type member struct {
	inst Instance
	ep   *endpoint
	err  error
}

// NewBalancer validates cfg, resolves service through r once (within
// ctx) and returns a Balancer over its instances, which then watches r for
// changes until Close. ctx bounds only that first resolution; the watch
// keeps ctx's values, not its cancellation. A field of cfg out of range is
// an error naming it, as are a nil Resolver (a nil pointer included) and
// an empty service; a Resolver that can neither reach its registry nor
// serve a set it knew returns an error, which NewBalancer returns wrapped.
// An empty set is no error: Pick refuses with a NoInstanceError until an
// instance appears. The MeterProvider observes the Balancer (and holds it)
// until Close.
func NewBalancer(ctx context.Context, r Resolver, service string, cfg BalancerConfig) (*Balancer, error) {
	s, err := settle(cfg)
	if err != nil {
		return nil, err
	}
	switch rv := reflect.ValueOf(r); {
	case r == nil:
		return nil, errors.New("discovery: NewBalancer: nil Resolver")
	case rv.Kind() == reflect.Pointer && rv.IsNil():
		return nil, fmt.Errorf("discovery: NewBalancer: the Resolver is a nil %T", r)
	case service == "":
		return nil, errors.New("discovery: NewBalancer: empty service name")
	}
	b := &Balancer{
		cfg:       s,
		service:   service,
		epoch:     time.Now(),
		endpoints: map[string]*endpoint{},
		wake:      make(chan struct{}, 1),
	}
	if err := b.inst.create(cfg.MeterProvider, service); err != nil {
		return nil, err
	}
	insts, err := r.Resolve(ctx, service)
	if err != nil {
		return nil, fmt.Errorf("discovery: resolving %q: %w", service, err)
	}
	b.update(insts)
	if err := b.inst.register(b); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.watchErr = r.Watch(wctx, service, b.update)
	}()
	go func() {
		defer b.wg.Done()
		b.maintain(wctx)
	}()
	return b, nil
}

// Service returns the service the Balancer serves.
func (b *Balancer) Service() string { return b.service }

// since returns the monotonic time elapsed since b.epoch, in nanoseconds.
func (b *Balancer) since() int64 { return int64(time.Since(b.epoch)) }

// Pick chooses an instance for one attempt and returns its address and a
// Permit whose Done reports the attempt's outcome (exactly once). key is
// ignored: a Balancer serves one service. When avoid is the address of an
// instance and another may be picked, Pick picks another. With no instance
// to offer it returns, at once, a *NoInstanceError (matching ErrNoInstance,
// bulwark.ErrNoEndpoint and bulwark.ErrRejected); a ctx already done gets
// ctx.Err(). After Close it keeps picking from the last set.
func (b *Balancer) Pick(ctx context.Context, _ string, avoid string) (string, bulwark.Permit, error) {
	if err := ctx.Err(); err != nil {
		return "", bulwark.Permit{}, err
	}
	s := b.snap.Load()
	if len(s.eps) == 0 {
		b.refused.Add(1)
		return "", bulwark.Permit{}, s.err
	}
	var ep *endpoint
	var start int64 // only PeakEWMA reads the clock
	if b.cfg.policy == RoundRobin {
		ep = s.roundRobin(avoid)
	} else {
		start = b.since()
		ep = s.twoChoices(avoid)
		ep.started.Add(1)
	}
	return ep.addr, bulwark.NewPermit(b, ep, start), nil
}

// Enter is Pick avoiding nothing, for use as a plain bulwark.Guard (the
// address is then lost: prefer Pick).
func (b *Balancer) Enter(ctx context.Context, key string) (bulwark.Permit, error) {
	_, p, err := b.Pick(ctx, key, "")
	return p, err
}

// Release reports how the attempt that p admitted ended: its latency
// (PeakEWMA) and its outcome feed the instance's estimate and the
// ejection rules; an Ignored outcome only ends the attempt. Callers call
// p.Done, which calls Release; p must come from b.Pick or b.Enter.
func (b *Balancer) Release(p bulwark.Permit, o bulwark.Outcome) {
	ep, ok := p.Ref().(*endpoint)
	if !ok {
		return
	}
	if o != bulwark.Success && o != bulwark.Failure {
		o = bulwark.Ignored // and any outcome this package does not know
	}
	ep.ended[o].Add(1)
	if b.cfg.policy == PeakEWMA {
		if o != bulwark.Ignored { // no fact about the instance
			now, ref := b.since(), 0.0
			if o == bulwark.Failure {
				ref = b.snap.Load().typical(now, b.cfg.rate)
			}
			ep.observe(now, now-p.Start(), o == bulwark.Failure, ref, b.cfg)
		}
	}
	switch o {
	case bulwark.Success:
		if ep.consecutive.Load() != 0 { // no write, mostly: the word is shared
			ep.consecutive.Store(0)
		}
	case bulwark.Failure:
		// At the threshold, and at every further threshold's worth of
		// failures while the cap on ejections spares the instance: a
		// storm of failures takes the Balancer's lock once per run, not
		// once each.
		if c := b.cfg.consecutive; c > 0 {
			if n := ep.consecutive.Add(1); n >= c && n%c == 0 {
				b.eject(ep, reasonConsecutive)
			}
		}
	}
}

// Close stops watching the Resolver, waits for the Balancer's goroutines
// to end, and unregisters its metrics. It returns the error the
// Resolver's Watch returned, if it returned one. Pick keeps working on the
// last set. Close is idempotent.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.wg.Wait()
		if b.watchErr != nil {
			b.watchErr = fmt.Errorf("discovery: watching %q: %w", b.service, b.watchErr)
		}
		b.closeErr = errors.Join(b.watchErr, b.inst.unregister())
	})
	return b.closeErr
}

// InstanceStatus is what a Balancer knows of one instance of its last set.
type InstanceStatus struct {
	Instance Instance
	// Excluded says why the instance is never picked: an error matching
	// ErrInvalidInstance or ErrIncompatible; nil for an eligible one.
	Excluded error
	// Ejected tells an instance ejected until EjectedUntil (it is still
	// picked in panic mode).
	Ejected      bool
	EjectedUntil time.Time
	// Ejections is the count the next ejection's length is computed from.
	Ejections int
	// Outstanding is how many attempts are in flight on the instance;
	// zero under RoundRobin, which does not count them.
	Outstanding int64
	// Successes, Failures and Ignored count the attempts on the instance
	// that ended, by outcome, since it joined.
	Successes, Failures, Ignored uint64
	// Latency is the peak-EWMA latency estimate now; zero under
	// RoundRobin or before any observation.
	Latency time.Duration
}

// Status returns the instances of the last set, in its order, with what
// the Balancer knows of each.
func (b *Balancer) Status() []InstanceStatus {
	now := b.since()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]InstanceStatus, len(b.members))
	for i, m := range b.members {
		out[i] = InstanceStatus{Instance: m.inst, Excluded: m.err}
		if ep := m.ep; ep != nil {
			out[i].Ejected, out[i].EjectedUntil, out[i].Ejections = ep.ejected, ep.until, ep.ejections
			if b.cfg.policy == PeakEWMA {
				out[i].Outstanding = ep.outstanding()
			}
			out[i].Successes = ep.ended[bulwark.Success].Load()
			out[i].Failures = ep.ended[bulwark.Failure].Load()
			out[i].Ignored = ep.ended[bulwark.Ignored].Load()
			out[i].Latency = ep.latency(now, b.cfg.rate)
		}
	}
	return out
}

// update makes insts the set of instances. The Resolver's Watch calls it.
func (b *Balancer) update(insts []Instance) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.snap.Load() != nil && slices.EqualFunc(insts, b.members, func(i Instance, m member) bool { return sameInstance(i, m.inst) }) {
		return // the same set again (a Watch's first call after Resolve): keep the turns
	}
	next := make(map[string]*endpoint, len(insts))
	members := make([]member, 0, len(insts))
	for i, inst := range insts {
		m := member{inst: inst}
		switch err := b.judge(inst); {
		case err != nil:
			m.err = err
		case next[inst.Addr] != nil:
			m.err = fmt.Errorf("%w: [%d] %q: duplicate address", ErrInvalidInstance, i, inst.Addr)
		default:
			ep := b.endpoints[inst.Addr]
			if ep == nil {
				ep = &endpoint{endpointCold: endpointCold{addr: inst.Addr}}
				ep.pickOpts = b.inst.instanceOpts(inst.Addr, b.cfg.perInstance)
			}
			ep.inst, ep.weight = inst, max(inst.Weight, 1)
			next[inst.Addr] = ep
			m.ep = ep
		}
		members = append(members, m)
	}
	for addr, ep := range b.endpoints {
		if next[addr] == nil {
			ep.removed = true
			for k := range b.retired {
				b.retired[k] += ep.ended[k].Load()
			}
			if ep.ejected {
				b.ejectedN--
			}
		}
	}
	b.endpoints, b.members = next, members
	b.rebuild()
}

// judge returns why inst may not be picked, or nil.
func (b *Balancer) judge(inst Instance) error {
	switch {
	case inst.Addr == "":
		return fmt.Errorf("%w: empty address", ErrInvalidInstance)
	case inst.Weight < 0:
		return fmt.Errorf("%w: %q: weight %d, want >= 0", ErrInvalidInstance, inst.Addr, inst.Weight)
	case !b.cfg.requireSet:
		return nil
	case inst.Version == "":
		return fmt.Errorf("%w: %q has no version, want %s", ErrIncompatible, inst.Addr, b.wanted())
	}
	v, err := ParseVersion(inst.Version)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidInstance, inst.Addr, err)
	}
	if !b.cfg.require.Allows(v) {
		return fmt.Errorf("%w: %q is %v, want %s", ErrIncompatible, inst.Addr, v, b.wanted())
	}
	return nil
}

// wanted describes the version requirement: "2.x from 2.3".
func (b *Balancer) wanted() string {
	r := b.cfg.require
	return strconv.Itoa(r.Major) + ".x from " + r.String()
}

// rebuild swaps in a snapshot of the current state. b.mu is held.
func (b *Balancer) rebuild() {
	s := &snapshot{ejected: b.ejectedN, rate: b.cfg.rate}
	var all []*endpoint
	for _, m := range b.members {
		switch {
		case m.ep != nil:
			all = append(all, m.ep)
			if !m.ep.ejected {
				s.eps = append(s.eps, m.ep)
			}
		case errors.Is(m.err, ErrIncompatible):
			s.incompatible++
		default:
			s.invalid++
		}
	}
	s.eligible = len(all)
	if p := b.cfg.panic; p >= 0 && len(all) > 0 && float64(len(s.eps)) < p*float64(len(all)) {
		s.eps, s.panic = all, true
	}
	if len(s.eps) == 0 {
		s.err = &NoInstanceError{Service: b.service, Known: len(b.members),
			Incompatible: s.incompatible, Invalid: s.invalid, Ejected: b.ejectedN}
	}
	weights := make([]int, len(s.eps))
	equal := true
	for i, ep := range s.eps {
		weights[i] = ep.weight
		equal = equal && ep.weight == weights[0]
	}
	if !equal {
		if b.cfg.policy == RoundRobin {
			s.sched = schedule(weights)
			s.cycle = newModulus(len(s.sched))
		} else {
			s.invWeight = make([]float64, len(weights))
			for i, w := range weights {
				s.invWeight[i] = 1 / float64(w)
			}
		}
	}
	if b.cfg.policy == RoundRobin && len(s.eps) > 0 {
		if s.sched == nil {
			s.cycle = newModulus(len(s.eps))
		}
		// A random start, so that clients started together do not all
		// begin on the same instance.
		s.next.Store(rand.Uint32())
		s.stripes = newStripes()
	}
	b.snap.Store(s)
}

// Metric attribute values of bulwark.discovery.instances.
const (
	stateEligible     = "eligible"
	stateIncompatible = "incompatible"
	stateInvalid      = "invalid"
)

// observe reports the Balancer's state to obs.
func (b *Balancer) observe(obs metric.Observer) {
	s := b.snap.Load()
	in := &b.inst
	obs.ObserveInt64(in.instances, int64(s.eligible), in.stateOpts[0])
	obs.ObserveInt64(in.instances, int64(s.incompatible), in.stateOpts[1])
	obs.ObserveInt64(in.instances, int64(s.invalid), in.stateOpts[2])
	obs.ObserveInt64(in.ejected, int64(s.ejected), in.keyOpt)
	panicking := int64(0)
	if s.panic {
		panicking = 1
	}
	obs.ObserveInt64(in.panic, panicking, in.keyOpt)
	obs.ObserveInt64(in.noInstance, b.refused.Load(), in.keyOpt)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.perInstance {
		for _, ep := range b.endpoints {
			for o := range ep.ended {
				obs.ObserveInt64(in.picks, int64(ep.ended[o].Load()), ep.pickOpts[o])
			}
		}
		return
	}
	total := b.retired
	for _, ep := range b.endpoints {
		for k := range total {
			total[k] += ep.ended[k].Load()
		}
	}
	for o, n := range total {
		obs.ObserveInt64(in.picks, int64(n), in.outcomeOpts[o])
	}
}
