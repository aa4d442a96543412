package grpcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// DiscoveryScheme is the URI scheme of the resolver Resolver builds: a
// ClientConn's target is "bulwark:///<service>" (see DiscoveryTarget).
const DiscoveryScheme = "bulwark"

// BalancerName is the name under which the gRPC balancer of
// DiscoveryDialOptions is known to grpc-go, in a service config's
// loadBalancingConfig.
//
// grpc-go finds a balancer only by name, in its process-wide registry
// (balancer.Register); there is no per-ClientConn way to hand it one. So
// the first call of DiscoveryDialOptions registers, once, a balancer that
// holds no state of its own: everything it needs (the *discovery.Balancer
// of one client) travels in the resolver's state, from the resolver that
// the client was given with grpc.WithResolvers. A ClientConn whose service
// config names this balancer without that resolver fails its calls with
// Unavailable, saying so.
const BalancerName = "bulwark_discovery"

// DiscoveryTarget returns the target to give grpc.NewClient with the
// options of DiscoveryDialOptions or Resolver: "bulwark:///" + service.
func DiscoveryTarget(service string) string { return DiscoveryScheme + ":///" + service }

// DiscoveryConfig configures DiscoveryDialOptions. The zero DiscoveryConfig
// is valid.
type DiscoveryConfig struct {
	// Balancer configures the *discovery.Balancer that picks the instance
	// of every attempt. Zero means its defaults: peak-EWMA power of two
	// choices with outlier ejection.
	Balancer discovery.BalancerConfig
	// ServiceConfig is the JSON service config the ClientConn should use
	// (Interceptors.ServiceConfig, say): its methodConfig and
	// retryThrottling are kept, its loadBalancingConfig and
	// loadBalancingPolicy replaced by the discovery balancer. The resolver
	// serves the result, which takes precedence over any
	// grpc.WithDefaultServiceConfig: pass Interceptors.ServiceConfig here,
	// or its retry policy is lost. Empty means none but the balancer's.
	ServiceConfig string
	// Bulkhead, when not nil, limits the attempts running at once on each
	// instance: a bulkhead.Set keyed by the instance's address. Give it
	// an adaptive limit (bulkhead.AdaptiveConfig) for a service that can
	// be overloaded: each instance's limit learns, from the latency and
	// the outcome of the attempts on that instance alone, how many it
	// serves at once without queueing, so that a slow or failing
	// instance sheds its own load, not its peers'. An attempt holds its
	// instance's slot from its pick until grpc-go reports its end; a
	// stream, until it ends. An instance at its limit is passed over for
	// another (see DiscoveryDialOptions). A pick never waits: MaxQueue and
	// MaxWait must be zero. Name is ignored.
	//
	// Each ClientConn dialled with the options keeps a Set of its own,
	// from its first call until it closes or goes idle. Read it through
	// its metrics on MeterProvider (nil: the global one):
	// bulwark.bulkhead.in_flight, .limit and .rejected, with the
	// instance's address as bulwark.key. Nil means no limit per instance.
	Bulkhead *bulkhead.Config
}

// registerOnce registers the discovery balancer with grpc-go (see
// BalancerName).
var registerOnce sync.Once

// DiscoveryDialOptions returns the options that make a ClientConn find the
// instances of service through r and balance its attempts over them with
// a *discovery.Balancer, which it also returns: dial DiscoveryTarget(service)
// with them (and the Interceptors' own options, in any order), and Close
// the Balancer after the ClientConn. ctx bounds the Balancer's first
// resolution only (see discovery.NewBalancer).
//
// Each attempt, grpc-go's own retries included, asks the Balancer for an
// instance and runs on that instance's connection; its outcome, the
// attempt's error classified by Classify, is reported to the Balancer, so
// that slow instances draw less traffic and failing ones are ejected. An
// instance picked while its connection is not ready is passed over for
// another (a connection that failed counts as a Failure of the instance);
// with no instance to pick, a call that does not wait for ready fails at
// once with Unavailable. A bad field of cfg is an error naming it.
//
// With cfg.Bulkhead, an instance whose limit is reached is passed over for
// another as well (its pick ends Ignored: the attempt never started). When
// no instance picked can take the attempt and one of them was at its
// limit, the attempt fails at once, without waiting for connections still
// being made, with a ResourceExhausted status error that matches
// bulkhead.ErrFull and bulwark.ErrRejected: a local refusal, which
// Classify calls Ignored, so that the Interceptors' breaker does not count
// it against the method. grpc-go ends the call with it, without retrying
// it, even when the call waits for ready (grpc.WaitForReady): waiting for
// ready is waiting for a connection, and a picker cannot wait for a slot
// to free. A call whose earlier attempt failed and whose retry is refused
// so ends with the refusal.
//
// Every attempt of a call but the first avoids the instance that the
// call's previous attempt was sent to: a retry goes elsewhere than the
// instance that just failed, a hedge elsewhere than the one still keeping
// the first attempt waiting. With no other instance to pick, it goes to
// the same one: avoiding never fails a call. The options include a unary
// and a stream interceptor (chained: they keep the caller's) that give
// each call a record of its attempts, for one allocation per call; the
// Interceptors' hedged calls carry one of their own, which these
// interceptors keep, so the options may come in any order.
func DiscoveryDialOptions(ctx context.Context, r discovery.Resolver, service string, cfg DiscoveryConfig) ([]grpc.DialOption, *discovery.Balancer, error) {
	sc, err := discoveryServiceConfig(cfg.ServiceConfig)
	if err != nil {
		return nil, nil, err
	}
	bh, err := instanceBulkhead(cfg.Bulkhead)
	if err != nil {
		return nil, nil, err
	}
	registerOnce.Do(func() { balancer.Register(balancerBuilder{}) })
	if err := checkServiceConfig(sc); err != nil {
		return nil, nil, err
	}
	db, err := discovery.NewBalancer(ctx, r, service, cfg.Balancer)
	if err != nil {
		return nil, nil, err
	}
	b := &resolverBuilder{r: r, service: service, db: db, serviceConfig: sc, bulkhead: bh}
	return []grpc.DialOption{
		grpc.WithResolvers(b),
		grpc.WithConnectParams(reconnect()),
		grpc.WithChainUnaryInterceptor(unaryAttempts),
		grpc.WithChainStreamInterceptor(streamAttempts),
	}, db, nil
}

// attempts is the context of one call through a ClientConn of
// DiscoveryDialOptions, as its interceptors hand it on: the caller's
// context and the connection the call's last attempt was picked for. Every
// attempt's context derives from it (grpc-go derives each attempt's,
// transparent retries included, from the context its interceptors give
// the invoker), so the picker finds it in balancer.PickInfo.Ctx.
//
// It is a Context itself, rather than a value put in one, to cost one
// allocation instead of two. Its Done, Err and Deadline are the caller's
// context's own, and so are the values it holds: context.WithCancel under
// it still finds the caller's cancellation and starts no goroutine.
type attempts struct {
	context.Context
	// last is the picker's entry of the connection the last attempt was
	// picked for: immutable, so the entry's address is read with no lock.
	// Hedged attempts pick concurrently, hence the atomic.
	last atomic.Pointer[subConn]
}

// attemptsKey is the Value key under which an *attempts answers.
type attemptsKey struct{}

func (a *attempts) Value(key any) any {
	if key == (attemptsKey{}) {
		return a
	}
	return a.Context.Value(key)
}

// attemptsOf returns the record of the attempts of the call ctx belongs
// to; nil when the call did not pass the interceptors of
// DiscoveryDialOptions.
func attemptsOf(ctx context.Context) *attempts {
	a, _ := ctx.Value(attemptsKey{}).(*attempts)
	return a
}

// withAttempts returns ctx with a record of attempts: ctx itself when it
// has one already (a hedged call's attempts share their call's).
func withAttempts(ctx context.Context) context.Context {
	if attemptsOf(ctx) != nil {
		return ctx
	}
	return &attempts{Context: ctx}
}

// unaryAttempts gives a unary call its record of attempts.
func unaryAttempts(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(withAttempts(ctx), method, req, reply, cc, opts...)
}

// streamAttempts gives a stream its record of attempts: grpc-go retries a
// stream too, until its first reply message commits it.
func streamAttempts(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(withAttempts(ctx), desc, cc, method, opts...)
}

// reconnect caps grpc-go's reconnect backoff (1s doubling to 120s by
// default) at one second: the discovery balancer's ejection, not a long
// reconnect wait, keeps traffic off a dead instance, and an instance that
// comes back must have a connection by the time a breaker's half-open trial
// looks for one. One dial a second to a dead instance costs next to nothing.
func reconnect() grpc.ConnectParams {
	return grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 20 * time.Second,
	}
}

// instanceBulkhead validates DiscoveryConfig.Bulkhead and returns a copy of
// it, from which each resolver builds its ClientConn's Set; nil for none.
func instanceBulkhead(c *bulkhead.Config) (*bulkhead.Config, error) {
	if c == nil {
		return nil, nil
	}
	const field = "grpcclient: DiscoveryConfig.Bulkhead."
	switch {
	case c.MaxQueue != 0:
		return nil, fmt.Errorf(field+"MaxQueue is %d, want 0: a pick never waits, it passes over an instance at its limit", c.MaxQueue)
	case c.MaxWait != 0:
		return nil, fmt.Errorf(field+"MaxWait is %v, want 0: a pick never waits, it passes over an instance at its limit", c.MaxWait)
	}
	cp := *c
	if c.Adaptive != nil {
		a := *c.Adaptive // the caller's later changes reach no ClientConn
		cp.Adaptive = &a
	}
	// Build one to validate every other field; the resolvers build their
	// own as their ClientConns start.
	s, err := bulkhead.NewSet(cp)
	if err != nil {
		return nil, fmt.Errorf("grpcclient: DiscoveryConfig.Bulkhead: %w", err)
	}
	if err := s.Close(); err != nil {
		return nil, fmt.Errorf("grpcclient: DiscoveryConfig.Bulkhead: %w", err)
	}
	return &cp, nil
}

// discoveryServiceConfig returns base with the discovery balancer as its
// load-balancing policy.
func discoveryServiceConfig(base string) (string, error) {
	doc := map[string]any{}
	if base != "" {
		if err := json.Unmarshal([]byte(base), &doc); err != nil {
			return "", fmt.Errorf("grpcclient: DiscoveryConfig.ServiceConfig: %w", err)
		}
		if doc == nil { // JSON null: none, as grpc-go reads it
			doc = map[string]any{}
		}
	}
	delete(doc, "loadBalancingPolicy")
	doc["loadBalancingConfig"] = []any{map[string]any{BalancerName: map[string]any{}}}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("grpcclient: DiscoveryConfig.ServiceConfig: %w", err)
	}
	return string(out), nil
}

// checkServiceConfig has grpc-go parse sc, the service config the resolver
// will serve. grpc-go exports no parser of its own, and parses what a
// resolver serves only when a ClientConn first resolves: a config it
// refuses would fail every call instead of DiscoveryDialOptions. A
// ClientConn made for the purpose parses it as its default service
// config, and is closed before it ever connects.
func checkServiceConfig(sc string) error {
	cc, err := grpc.NewClient("passthrough:///"+BalancerName,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
	if err != nil {
		return fmt.Errorf("grpcclient: DiscoveryConfig.ServiceConfig: %w", err)
	}
	return cc.Close()
}

// Resolver returns a resolver builder, to give grpc.NewClient with
// grpc.WithResolvers (never to register globally), that resolves
// DiscoveryTarget(service) to the instances r lists, following r's Watch:
// one address per instance, the Instance itself in the address's
// Attributes (see InstanceOf). It serves no service config: the
// ClientConn's own balancer (round_robin, say) balances. An empty set is
// reported as such, and the ClientConn's balancer fails calls at once.
// DiscoveryDialOptions uses it with a balancer of its own.
func Resolver(r discovery.Resolver, service string) resolver.Builder {
	return &resolverBuilder{r: r, service: service}
}

// InstanceOf returns the instance that the resolver of Resolver or
// DiscoveryDialOptions put in addr.
func InstanceOf(addr resolver.Address) (discovery.Instance, bool) {
	a, ok := addr.Attributes.Value(instanceKey{}).(instanceAttr)
	return a.inst, ok
}

type (
	instanceKey struct{}
	balancerKey struct{}
	bulkheadKey struct{}
)

// instanceAttr is an Instance as an attribute value: grpc-go compares
// attribute values, and an Instance, holding a map, does not compare
// with ==.
type instanceAttr struct{ inst discovery.Instance }

func (a instanceAttr) Equal(o any) bool {
	b, ok := o.(instanceAttr)
	return ok && a.inst.Addr == b.inst.Addr && a.inst.Version == b.inst.Version &&
		a.inst.Weight == b.inst.Weight && maps.Equal(a.inst.Meta, b.inst.Meta)
}

// resolverBuilder builds the resolvers of one service: with db set, for
// the discovery balancer, and with bulkhead set, each with the Set of
// per-instance limits of its ClientConn.
type resolverBuilder struct {
	r             discovery.Resolver
	service       string
	db            *discovery.Balancer
	serviceConfig string
	bulkhead      *bulkhead.Config // validated by instanceBulkhead
}

func (b *resolverBuilder) Scheme() string { return DiscoveryScheme }

func (b *resolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	if ep := target.Endpoint(); ep != b.service {
		return nil, fmt.Errorf("grpcclient: target %q names service %q, want %q (the resolver's)", target.String(), ep, b.service)
	}
	if b.r == nil {
		return nil, errors.New("grpcclient: Resolver: nil discovery.Resolver")
	}
	var sc *resolver.State
	var set *bulkhead.Set
	if b.db != nil {
		sc = &resolver.State{
			ServiceConfig: cc.ParseServiceConfig(b.serviceConfig),
			Attributes:    attributes.New(balancerKey{}, b.db),
		}
		if err := sc.ServiceConfig.Err; err != nil {
			return nil, fmt.Errorf("grpcclient: DiscoveryConfig.ServiceConfig: %w", err)
		}
		if b.bulkhead != nil {
			// The ClientConn's own: the resolver lives as long as the
			// ClientConn (or until it goes idle), and Close unregisters
			// the Set's gauges with it.
			var err error
			if set, err = bulkhead.NewSet(*b.bulkhead); err != nil {
				return nil, fmt.Errorf("grpcclient: DiscoveryConfig.Bulkhead: %w", err)
			}
			sc.Attributes = sc.Attributes.WithValue(bulkheadKey{}, set)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := &discoveryResolver{cancel: cancel, bulkheads: set}
	res.wg.Add(1)
	go func() {
		defer res.wg.Done()
		err := b.r.Watch(ctx, b.service, func(insts []discovery.Instance) {
			st := resolver.State{Addresses: make([]resolver.Address, 0, len(insts))}
			if sc != nil {
				st.ServiceConfig, st.Attributes = sc.ServiceConfig, sc.Attributes
			}
			for _, inst := range insts {
				st.Addresses = append(st.Addresses, resolver.Address{
					Addr:       inst.Addr,
					Attributes: attributes.New(instanceKey{}, instanceAttr{inst}),
				})
			}
			// A watch learns of every change: re-resolving would tell
			// nothing new, and the error UpdateState may return is moot.
			_ = cc.UpdateState(st)
		})
		if err != nil {
			cc.ReportError(fmt.Errorf("grpcclient: watching %q: %w", b.service, err))
		}
	}()
	return res, nil
}

// discoveryResolver is the resolver of one ClientConn: a Watch running
// until Close, and the ClientConn's per-instance limits, if any.
type discoveryResolver struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	bulkheads *bulkhead.Set // nil without DiscoveryConfig.Bulkhead
}

// ResolveNow does nothing: the watch reports every change as it happens.
func (*discoveryResolver) ResolveNow(resolver.ResolveNowOptions) {}

func (r *discoveryResolver) Close() {
	r.cancel()
	r.wg.Wait()
	if r.bulkheads != nil {
		// The attempts still admitted release their slots all the same:
		// a closed Set only stops being observed.
		_ = r.bulkheads.Close()
	}
}

// balancerBuilder builds the discovery balancer of each ClientConn.
type balancerBuilder struct{}

func (balancerBuilder) Name() string { return BalancerName }

func (balancerBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &discoveryBalancer{cc: cc, conns: map[string]*subConn{}}
}

// discoveryBalancer keeps one SubConn per address the resolver lists and
// hands grpc-go pickers that ask a *discovery.Balancer which to use.
// grpc-go calls its methods, and the SubConns' state listeners, from one
// goroutine at a time: it needs no lock.
type discoveryBalancer struct {
	cc        balancer.ClientConn
	db        *discovery.Balancer
	service   string
	bulkheads *bulkhead.Set // nil without DiscoveryConfig.Bulkhead
	full      error         // the refusal when every instance picked is at its limit, made once per service
	conns     map[string]*subConn
	lastErr   error // the last connection or resolver error
	shutdown  bool
}

// subConn is one address's connection and its last known state.
type subConn struct {
	sc    balancer.SubConn
	state connectivity.State
	addr  string // in the picker's copies only
}

var errNoResolver = status.Error(codes.Unavailable,
	"grpcclient: the "+BalancerName+" balancer needs the resolver of grpcclient.DiscoveryDialOptions")

func (b *discoveryBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	db, _ := s.ResolverState.Attributes.Value(balancerKey{}).(*discovery.Balancer)
	if db == nil {
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{errNoResolver}})
		return balancer.ErrBadResolverState
	}
	if b.full == nil || b.service != db.Service() {
		b.full = errInstancesFull(db.Service())
	}
	b.db, b.service = db, db.Service()
	b.bulkheads, _ = s.ResolverState.Attributes.Value(bulkheadKey{}).(*bulkhead.Set)
	seen := make(map[string]bool, len(s.ResolverState.Endpoints))
	for _, ep := range s.ResolverState.Endpoints {
		for _, a := range ep.Addresses {
			seen[a.Addr] = true
			if b.conns[a.Addr] != nil {
				continue
			}
			c := &subConn{state: connectivity.Idle}
			sc, err := b.cc.NewSubConn([]resolver.Address{a}, balancer.NewSubConnOptions{
				StateListener: func(st balancer.SubConnState) { b.changed(c, st) },
			})
			if err != nil {
				b.lastErr = err
				continue
			}
			c.sc = sc
			b.conns[a.Addr] = c
			sc.Connect()
		}
	}
	for addr, c := range b.conns {
		if !seen[addr] {
			c.sc.Shutdown()
			delete(b.conns, addr)
		}
	}
	b.publish()
	return nil
}

func (b *discoveryBalancer) ResolverError(err error) {
	b.lastErr = err
	if len(b.conns) == 0 {
		b.publish()
	}
}

// changed records a SubConn's new state.
func (b *discoveryBalancer) changed(c *subConn, st balancer.SubConnState) {
	if b.shutdown || st.ConnectivityState == connectivity.Shutdown {
		return
	}
	if st.ConnectivityState == connectivity.TransientFailure {
		b.lastErr = st.ConnectionError
	}
	old := c.state
	c.state = st.ConnectivityState
	if c.state == connectivity.Idle {
		// A SubConn that lost its connection, or whose backoff ended,
		// waits in Idle until told to connect.
		c.sc.Connect()
	}
	if old != c.state {
		b.publish()
	}
}

// UpdateSubConnState is not called: every SubConn has a StateListener.
func (*discoveryBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *discoveryBalancer) ExitIdle() {
	for _, c := range b.conns {
		if c.state == connectivity.Idle {
			c.sc.Connect()
		}
	}
}

func (b *discoveryBalancer) Close() {
	b.shutdown = true
	for addr, c := range b.conns {
		c.sc.Shutdown()
		delete(b.conns, addr)
	}
}

// publish gives grpc-go a picker for the current states: one that asks
// the discovery Balancer when a connection is ready; one that makes calls
// wait while connections are being made; one that fails them at once
// otherwise.
func (b *discoveryBalancer) publish() {
	p := &picker{db: b.db, bulkheads: b.bulkheads, full: b.full, conns: make(map[string]*subConn, len(b.conns))}
	ready, connecting := 0, 0
	for addr, c := range b.conns {
		p.conns[addr] = &subConn{sc: c.sc, state: c.state, addr: addr} // a copy: the picker's snapshot
		switch c.state {
		case connectivity.Ready:
			ready++
		case connectivity.Idle, connectivity.Connecting:
			connecting++
		}
	}
	var st balancer.State
	switch {
	case ready > 0:
		st.ConnectivityState = connectivity.Ready
		p.ready = ready
		if connecting > 0 {
			p.passed = balancer.ErrNoSubConnAvailable
		} else {
			p.passed = status.Error(codes.Unavailable, "grpcclient: no instance picked of "+
				fmt.Sprintf("%q", b.service)+" has a ready connection")
		}
		st.Picker = p
	case connecting > 0:
		st = balancer.State{ConnectivityState: connectivity.Connecting, Picker: errPicker{balancer.ErrNoSubConnAvailable}}
	case len(b.conns) == 0:
		var err error = &discovery.NoInstanceError{Service: b.service}
		if b.lastErr != nil && b.db == nil {
			err = b.lastErr
		}
		st = balancer.State{ConnectivityState: connectivity.TransientFailure,
			Picker: errPicker{status.Error(codes.Unavailable, err.Error())}}
	default:
		msg := "grpcclient: no connection to any instance of " + fmt.Sprintf("%q", b.service)
		if b.lastErr != nil {
			msg += ": " + b.lastErr.Error()
		}
		st = balancer.State{ConnectivityState: connectivity.TransientFailure,
			Picker: errPicker{status.Error(codes.Unavailable, msg)}}
	}
	b.cc.UpdateState(st)
}

// errPicker fails or queues every pick with err.
type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}

// picker is an immutable snapshot of the SubConns, at least one of them
// ready, over the discovery Balancer and the per-instance limits.
type picker struct {
	db        *discovery.Balancer
	bulkheads *bulkhead.Set // nil: no limit per instance
	conns     map[string]*subConn
	ready     int   // how many of conns are ready
	passed    error // when every pick lands on a connection that is not ready
	full      error // when the ready instances picked are at their limit
}

// maxPicks bounds the picks of one Pick.
const maxPicks = 16

// Pick asks the discovery Balancer for an instance until it names one whose
// connection is ready and, with per-instance limits, whose limit admits the
// attempt, a few times at most, avoiding first the instance of the call's
// last attempt, then each time the one it named last. A pick that cannot
// be used ends at once: a Failure of the instance if its connection failed,
// Ignored if it is still being made, if the resolver has not told this
// ClientConn of the instance yet, or if the instance is at its limit (the
// attempt never started). The pick it returns becomes the call's last
// attempt's, even if grpc-go then finds its connection gone and picks
// again: the next pick avoids it.
//
// When some instance picked was at its limit and none could be used, the
// refusal is ResourceExhausted, at once, even if other connections are
// still being made: shedding load must not wait. Pick asks an instance's
// limit at most once, and stops asking as soon as every ready instance has
// been found at its limit.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	tried := attemptsOf(info.Ctx)
	avoid := ""
	if tried != nil {
		if c := tried.last.Load(); c != nil {
			avoid = c.addr
		}
	}
	var full [maxPicks]*subConn // the ready instances found at their limit
	nFull := 0
	for range min(2*len(p.conns)+1, maxPicks) {
		addr, permit, err := p.db.Pick(info.Ctx, "", avoid)
		if err != nil {
			if ctxErr := info.Ctx.Err(); ctxErr != nil {
				return balancer.PickResult{}, status.FromContextError(ctxErr).Err()
			}
			return balancer.PickResult{}, status.Error(codes.Unavailable, err.Error())
		}
		c := p.conns[addr]
		if c != nil && c.state == connectivity.Ready {
			var slot bulwark.Permit
			if p.bulkheads != nil {
				if slices.Contains(full[:nFull], c) {
					// Found at its limit already in this Pick: asking
					// again would count the one attempt's refusal twice.
					permit.Done(bulwark.Ignored)
					avoid = addr
					continue
				}
				if slot, err = p.bulkheads.Enter(info.Ctx, addr); err != nil {
					permit.Done(bulwark.Ignored)
					if ctxErr := info.Ctx.Err(); ctxErr != nil {
						return balancer.PickResult{}, status.FromContextError(ctxErr).Err()
					}
					full[nFull] = c
					nFull++
					if nFull == p.ready {
						break // nothing left to try
					}
					avoid = addr
					continue
				}
			}
			if tried != nil {
				tried.last.Store(c)
			}
			ctx := info.Ctx
			if p.bulkheads == nil { // a smaller closure
				return balancer.PickResult{SubConn: c.sc, Done: func(d balancer.DoneInfo) {
					permit.Done(outcomeOf(ctx, d))
				}}, nil
			}
			return balancer.PickResult{SubConn: c.sc, Done: func(d balancer.DoneInfo) {
				o := outcomeOf(ctx, d)
				slot.Done(o) // first: the slot may admit another attempt at once
				permit.Done(o)
			}}, nil
		}
		if c != nil && c.state == connectivity.TransientFailure {
			permit.Done(bulwark.Failure)
		} else {
			permit.Done(bulwark.Ignored)
		}
		avoid = addr
	}
	if nFull > 0 {
		return balancer.PickResult{}, p.full
	}
	return balancer.PickResult{}, p.passed
}

// outcomeOf classifies the end of an attempt. grpc-go reports an attempt
// whose connection closed before it could start as done with no error and
// nothing received: no fact about the instance.
func outcomeOf(ctx context.Context, d balancer.DoneInfo) bulwark.Outcome {
	if d.Err == nil && !d.BytesReceived {
		return bulwark.Ignored
	}
	if timeout.Fired(ctx) != nil {
		// ctx is the attempt's, ended by our own deadline: the instance
		// kept us waiting, a Failure, not the caller's doing.
		ctx = context.WithoutCancel(ctx)
	}
	return Classify(ctx, d.Err)
}
