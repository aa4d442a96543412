package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/singleflight"
)

// DNSConfig configures a DNS resolver. The zero DNSConfig is valid: the
// system's resolver, a refresh every 30s, 5s per lookup, targets resolved
// to IP addresses.
type DNSConfig struct {
	// Server is the DNS server to ask, host:port ("127.0.0.1:8600"),
	// over UDP and, for long answers, TCP, with the pure-Go resolver.
	// Empty means the system's resolver and its configuration.
	Server string
	// Refresh is how often Watch looks a name up again, and how long
	// Resolve serves an answer from its cache. After a failed lookup while
	// no set is known, Watch tries again sooner: after 1s, then twice as
	// long each time, up to Refresh. Zero means 30s.
	Refresh time.Duration
	// Timeout bounds one lookup, the lookups of the SRV targets included.
	// Zero means 5s.
	Timeout time.Duration
	// KeepTargets puts each SRV target's host name in Instance.Addr, for a
	// transport that resolves names itself. False means each target is
	// resolved to its IP addresses through the same server (a private
	// registry's names are often known to it alone), one instance per
	// address, each with the SRV record's weight.
	KeepTargets bool
	// MeterProvider receives bulwark.discovery.staleness and
	// bulwark.discovery.refresh_errors. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// DNS is a Resolver over DNS SRV records: the service name given to
// Resolve and Watch is the SRV name to look up, for example
// "_grpc._tcp.users.svc.cluster.local." (end it with a dot to keep the
// resolver's search domains out). Each record gives instances at the
// record's target and port, with the record's weight (0 counting as 1) and
// Meta "dns.target" and "dns.priority" (the Balancer ignores priorities).
// Instances have no Version.
//
// When a lookup fails, DNS keeps serving the last set it obtained, and
// bulwark.discovery.staleness tells how old it is. An answer the resolver
// cannot use (malformed, or a record with port 0) is a failed lookup. A
// name that does not exist (NXDOMAIN) and a lone "." target (RFC 2782:
// the service is decidedly not available) are answers: no instance.
//
// DNS keeps the state of every name it was asked about for its lifetime.
// It is safe for concurrent use. Build it with NewDNS.
type DNS struct {
	resolver    *net.Resolver
	refresh     time.Duration
	timeout     time.Duration
	keepTargets bool
	flight      singleflight.Group

	mu    sync.Mutex
	names map[string]*dnsName

	// base bounds every lookup; Close cancels it and waits for the
	// lookups in flight, so that no goroutine outlives the DNS.
	base     context.Context
	stop     context.CancelFunc
	lifeMu   sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	meter        metric.Meter
	staleness    metric.Float64ObservableGauge
	errCount     metric.Int64ObservableCounter
	registration metric.Registration
}

// dnsName is what DNS knows of one name.
type dnsName struct {
	mu      sync.Mutex
	set     []Instance // sorted by Addr; nil: none known
	fetched time.Time  // of set; before the first success, when it was first asked for
	err     error      // of the last lookup

	malformed, failed atomic.Int64 // lookups that failed, by error.type
	opts              [3]metric.ObserveOption
}

// Defaults of DNSConfig.
const (
	defaultRefresh    = 30 * time.Second
	defaultDNSTimeout = 5 * time.Second
	firstRetry        = time.Second
)

// NewDNS validates cfg and returns a DNS resolver. A field out of range is
// an error naming it. The MeterProvider observes the resolver until Close.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	switch {
	case cfg.Refresh < 0:
		return nil, fmt.Errorf("discovery: DNSConfig.Refresh is %v, want >= 0", cfg.Refresh)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("discovery: DNSConfig.Timeout is %v, want >= 0", cfg.Timeout)
	}
	d := &DNS{
		resolver:    &net.Resolver{},
		refresh:     cfg.Refresh,
		timeout:     cfg.Timeout,
		keepTargets: cfg.KeepTargets,
		names:       map[string]*dnsName{},
	}
	d.base, d.stop = context.WithCancel(context.Background())
	if d.refresh == 0 {
		d.refresh = defaultRefresh
	}
	if d.timeout == 0 {
		d.timeout = defaultDNSTimeout
	}
	if server := cfg.Server; server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			return nil, fmt.Errorf("discovery: DNSConfig.Server is %q, want host:port: %w", server, err)
		}
		d.resolver = &net.Resolver{
			PreferGo: true, // the system's resolver cannot be sent elsewhere
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var dialer net.Dialer
				return dialer.DialContext(ctx, network, server)
			},
		}
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	d.meter = mp.Meter(scope)
	var err, err2 error
	d.staleness, err = d.meter.Float64ObservableGauge("bulwark.discovery.staleness",
		metric.WithDescription("Age of the set of instances served for a name: time since its last successful lookup (or since it was first asked for, while none succeeded)."),
		metric.WithUnit("s"))
	d.errCount, err2 = d.meter.Int64ObservableCounter("bulwark.discovery.refresh_errors",
		metric.WithDescription("Lookups that failed, by error.type: malformed (an answer that cannot be used) or lookup (unreachable, timed out, refused)."),
		metric.WithUnit("{lookup}"))
	if err = errors.Join(err, err2); err != nil {
		return nil, fmt.Errorf("discovery: creating instruments: %w", err)
	}
	d.registration, err = d.meter.RegisterCallback(d.observe, d.staleness, d.errCount)
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("discovery: registering the DNS callback: %w", err)
	}
	return d, nil
}

// errClosed is the error of a lookup asked for after Close.
var errClosed = errors.New("discovery: DNS resolver closed")

// Close ends the lookups in flight and waits for them, and unregisters the
// resolver's metrics. Afterwards no lookup starts: Resolve serves the sets
// already known (an error for a name never resolved) and Watch keeps them
// until its context ends.
func (d *DNS) Close() error {
	d.lifeMu.Lock()
	d.closed = true
	d.lifeMu.Unlock()
	d.stop()
	d.inflight.Wait()
	return d.registration.Unregister()
}

func (d *DNS) observe(_ context.Context, o metric.Observer) error {
	d.mu.Lock()
	names := slices.Collect(maps.Values(d.names))
	d.mu.Unlock()
	for _, n := range names {
		n.mu.Lock()
		age := time.Since(n.fetched)
		n.mu.Unlock()
		o.ObserveFloat64(d.staleness, age.Seconds(), n.opts[0])
		o.ObserveInt64(d.errCount, n.malformed.Load(), n.opts[1])
		o.ObserveInt64(d.errCount, n.failed.Load(), n.opts[2])
	}
	return nil
}

func (d *DNS) name(service string) *dnsName {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.names[service]
	if n == nil {
		key := attribute.String(keyAttr, service)
		n = &dnsName{fetched: time.Now()}
		n.opts[0] = metric.WithAttributeSet(attribute.NewSet(key))
		n.opts[1] = metric.WithAttributeSet(attribute.NewSet(key, attribute.String("error.type", "malformed")))
		n.opts[2] = metric.WithAttributeSet(attribute.NewSet(key, attribute.String("error.type", "lookup")))
		d.names[service] = n
	}
	return n
}

// Resolve returns the instances of service, the SRV name to look up: from
// the cache when the last successful lookup is younger than Refresh,
// otherwise from a new lookup (concurrent callers share it). When the
// lookup fails, it returns the last set it knew with a nil error, or, if it
// knew none, the lookup's error. The Meta maps of the instances are shared:
// do not modify them.
func (d *DNS) Resolve(ctx context.Context, service string) ([]Instance, error) {
	if service == "" {
		return nil, errors.New("discovery: dns: empty service name")
	}
	set, _, err := d.get(ctx, d.name(service), service, d.refresh)
	return slices.Clone(set), err
}

// Watch calls update with the instances of service (the SRV name) as soon
// as a lookup yields them, then looks the name up again every Refresh and
// calls update again whenever the set changed, until ctx ends; then it
// returns nil. While lookups fail it keeps the last set and tries again.
// If the first lookup fails and no set is known, update gets an empty set
// at once, so that a watcher never waits on the DNS server for a first
// answer (calls fail with "no instance" rather than hang); the real set
// follows when a lookup succeeds. An empty service name is an error,
// returned at once.
func (d *DNS) Watch(ctx context.Context, service string, update func([]Instance)) error {
	if service == "" {
		return errors.New("discovery: dns: empty service name")
	}
	n := d.name(service)
	var last []Instance
	delivered := false
	retry := firstRetry
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		// A set fetched for someone else within half a period will do: two
		// watchers of one name need not look it up twice.
		set, known, err := d.get(ctx, n, service, d.refresh/2)
		if ctx.Err() != nil {
			return nil
		}
		wait := d.refresh
		if err != nil && !known {
			wait, retry = min(retry, d.refresh), min(2*retry, d.refresh)
		} else {
			retry = firstRetry
		}
		switch {
		case known && (!delivered || !sameSet(set, last)):
			last, delivered = set, true
			update(slices.Clone(set))
		case !known && !delivered:
			delivered = true // last is nil: the first set found follows
			update([]Instance{})
		}
		timer.Reset(wait)
	}
}

// get returns the set of n, looked up unless the last success is younger
// than maxAge, and whether a set is known; err is the lookup's error when
// none is.
func (d *DNS) get(ctx context.Context, n *dnsName, service string, maxAge time.Duration) ([]Instance, bool, error) {
	n.mu.Lock()
	set, fresh := n.set, n.set != nil && time.Since(n.fetched) < maxAge
	n.mu.Unlock()
	if fresh {
		return set, true, nil
	}
	// The lookup runs on for whoever waits on it, bounded by Timeout and
	// by Close, whatever happens to the context of the caller that started
	// it.
	ch := d.flight.DoChan(service, func() (any, error) {
		d.lifeMu.Lock()
		if d.closed {
			d.lifeMu.Unlock()
			n.record(nil, errClosed)
			return nil, nil
		}
		d.inflight.Add(1)
		d.lifeMu.Unlock()
		defer d.inflight.Done()
		lctx, cancel := context.WithTimeout(d.base, d.timeout)
		defer cancel()
		set, err := d.lookup(lctx, service)
		n.record(set, err)
		return nil, nil
	})
	select {
	case <-ctx.Done():
		if set != nil {
			return set, true, nil
		}
		return nil, false, ctx.Err()
	case <-ch:
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.set != nil {
		return n.set, true, nil
	}
	return nil, false, n.err
}

// record keeps the outcome of one lookup.
func (n *dnsName) record(set []Instance, err error) {
	if err != nil {
		if errors.Is(err, errMalformed) {
			n.malformed.Add(1)
		} else {
			n.failed.Add(1)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.err = err
	if err == nil {
		n.set, n.fetched = set, time.Now()
	}
}

// errMalformed marks lookups that failed on an answer that cannot be used.
var errMalformed = errors.New("malformed SRV answer")

// lookup asks the DNS for the instances of name.
func (d *DNS) lookup(ctx context.Context, name string) ([]Instance, error) {
	_, srvs, err := d.resolver.LookupSRV(ctx, "", "", name)
	var dnsErr *net.DNSError
	switch {
	case err != nil && srvs != nil:
		// The resolver dropped records with invalid names (it returns what
		// is left, maybe nothing, with the error): the answer is not what
		// the registry meant to say.
		return nil, fmt.Errorf("discovery: dns: %w for %q: %w", errMalformed, name, err)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return []Instance{}, nil
	case err != nil:
		return nil, fmt.Errorf("discovery: dns: looking up SRV %q: %w", name, err)
	}
	set := make([]Instance, 0, len(srvs))
	seen := make(map[string]bool, len(srvs))
	for _, srv := range srvs {
		if srv.Target == "." {
			continue // this record says: no instance here
		}
		if srv.Port == 0 {
			return nil, fmt.Errorf("discovery: dns: %w for %q: target %q has port 0", errMalformed, name, srv.Target)
		}
		meta := map[string]string{"dns.target": srv.Target, "dns.priority": strconv.Itoa(int(srv.Priority))}
		port := strconv.Itoa(int(srv.Port))
		host := strings.TrimSuffix(srv.Target, ".")
		hosts := []string{host}
		if !d.keepTargets {
			if hosts, err = d.addresses(ctx, srv.Target); err != nil {
				return nil, fmt.Errorf("discovery: dns: resolving target %q of %q: %w", srv.Target, name, err)
			}
		}
		for _, h := range hosts {
			addr := net.JoinHostPort(h, port)
			if seen[addr] {
				continue // two records, or two targets, for one address: one instance
			}
			seen[addr] = true
			set = append(set, Instance{Addr: addr, Weight: int(srv.Weight), Meta: meta})
		}
	}
	slices.SortFunc(set, func(a, b Instance) int { return strings.Compare(a.Addr, b.Addr) })
	return set, nil
}

// addresses returns the IP addresses of target; none when it does not
// exist.
func (d *DNS) addresses(ctx context.Context, target string) ([]string, error) {
	ips, err := d.resolver.LookupNetIP(ctx, "ip", target)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	hosts := make([]string, len(ips))
	for i, ip := range ips {
		hosts[i] = ip.Unmap().String()
	}
	return hosts, nil
}

// sameSet reports whether two sets sorted by Addr hold the same instances.
func sameSet(a, b []Instance) bool {
	return slices.EqualFunc(a, b, sameInstance)
}

func sameInstance(x, y Instance) bool {
	return x.Addr == y.Addr && x.Version == y.Version && x.Weight == y.Weight && maps.Equal(x.Meta, y.Meta)
}
