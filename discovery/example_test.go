package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/miekg/dns"
)

func ExampleNewStatic() {
	st, err := discovery.NewStatic(map[string][]discovery.Instance{
		"users": {
			{Addr: "10.0.0.1:8080", Version: "2.3.0"},
			{Addr: "10.0.0.2:8080", Version: "2.4.1", Weight: 2},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	set, err := st.Resolve(context.Background(), "users")
	fmt.Println(set[0].Addr, set[1].Addr, err)

	// Bad input is refused, with the instance named.
	_, err = discovery.NewStatic(map[string][]discovery.Instance{
		"users": {{Addr: "10.0.0.1:8080"}, {Addr: "10.0.0.1:8080"}},
	})
	fmt.Println(err)
	// Output:
	// 10.0.0.1:8080 10.0.0.2:8080 <nil>
	// discovery: static: service "users": discovery: invalid instance: [1] "10.0.0.1:8080": duplicate address (also [0])
}

func ExampleNewBalancer() {
	st, _ := discovery.NewStatic(map[string][]discovery.Instance{
		"users": {{Addr: "10.0.0.1:8080"}, {Addr: "10.0.0.2:8080", Weight: 2}},
	})
	b, err := discovery.NewBalancer(context.Background(), st, "users", discovery.BalancerConfig{Policy: discovery.RoundRobin})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	picks := map[string]int{}
	for range 30 {
		addr, p, err := b.Pick(context.Background(), "users", "")
		if err != nil {
			fmt.Println(err)
			return
		}
		picks[addr]++
		p.Done(bulwark.Success) // how the attempt went: latency, ejection
	}
	fmt.Println(picks)
	// Output:
	// map[10.0.0.1:8080:10 10.0.0.2:8080:20]
}

// A Balancer is the Picker of a bulwark.Stack: each attempt of Do goes to
// the instance it picks, and a retry avoids the instance that just failed.
func ExampleNewBalancer_stack() {
	st, _ := discovery.NewStatic(map[string][]discovery.Instance{"users": {{Addr: "10.0.0.1:8080"}}})
	b, err := discovery.NewBalancer(context.Background(), st, "users", discovery.BalancerConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	stack, err := bulwark.New(bulwark.Config{Picker: b})
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := bulwark.Do(context.Background(), stack, "users", func(ctx context.Context) (string, error) {
		return "called " + bulwark.EndpointOf(ctx), nil // send the request there
	})
	fmt.Println(v, err)
	// Output:
	// called 10.0.0.1:8080 <nil>
}

// Only instances of a compatible API version are picked; with none, the
// refusal comes at once and says why.
func ExampleNewBalancer_requireVersion() {
	st, _ := discovery.NewStatic(map[string][]discovery.Instance{
		"users": {{Addr: "10.0.0.1:8080", Version: "1.9.0"}, {Addr: "10.0.0.2:8080", Version: "2.0.1"}},
	})
	b, err := discovery.NewBalancer(context.Background(), st, "users", discovery.BalancerConfig{RequireVersion: "2.1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	_, _, err = b.Pick(context.Background(), "users", "")
	fmt.Println(err)
	fmt.Println(errors.Is(err, discovery.ErrNoInstance), errors.Is(err, bulwark.ErrNoEndpoint))
	for _, s := range b.Status() {
		fmt.Println(s.Excluded)
	}
	// Output:
	// discovery: no instance of "users" (2 known: 2 incompatible)
	// true true
	// discovery: incompatible API version: "10.0.0.1:8080" is 1.9.0, want 2.x from 2.1
	// discovery: incompatible API version: "10.0.0.2:8080" is 2.0.1, want 2.x from 2.1
}

func ExampleNewDNS() {
	server, stop := exampleDNSServer() // a DNS server on 127.0.0.1, serving the records below
	defer stop()

	d, err := discovery.NewDNS(discovery.DNSConfig{Server: server})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	set, err := d.Resolve(context.Background(), "_http._tcp.users.example.")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, inst := range set {
		fmt.Println(inst.Addr, inst.Weight, inst.Meta["dns.target"])
	}
	// Output:
	// 127.0.0.1:8080 10 a.example.
	// 127.0.0.2:8080 30 b.example.
}

// exampleDNSServer serves _http._tcp.users.example. SRV to a.example. and
// b.example., and their addresses, on 127.0.0.1 over UDP.
func exampleDNSServer() (addr string, stop func()) {
	zone := map[uint16]map[string][]dns.RR{
		dns.TypeSRV: {"_http._tcp.users.example.": {
			&dns.SRV{Hdr: dns.RR_Header{Name: "_http._tcp.users.example.", Rrtype: dns.TypeSRV, Class: dns.ClassINET}, Target: "a.example.", Port: 8080, Weight: 10},
			&dns.SRV{Hdr: dns.RR_Header{Name: "_http._tcp.users.example.", Rrtype: dns.TypeSRV, Class: dns.ClassINET}, Target: "b.example.", Port: 8080, Weight: 30},
		}},
		dns.TypeA: {
			"a.example.": {&dns.A{Hdr: dns.RR_Header{Name: "a.example.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)}},
			"b.example.": {&dns.A{Hdr: dns.RR_Header{Name: "b.example.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 2)}},
		},
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(req)
			q := req.Question[0]
			m.Answer = zone[q.Qtype][q.Name]
			w.WriteMsg(m)
		})}
	served := make(chan struct{})
	go func() { srv.ActivateAndServe(); close(served) }()
	<-started
	return pc.LocalAddr().String(), func() { srv.Shutdown(); <-served }
}

func ExampleParseVersion() {
	for _, s := range []string{"v2.4.1", "2.5.0-rc.1", "3", "two"} {
		v, err := discovery.ParseVersion(s)
		fmt.Println(v, err)
	}
	// Output:
	// 2.4.1 <nil>
	// 2.5.0 <nil>
	// 3.0.0 <nil>
	// 0.0.0 discovery: version "two": want MAJOR[.MINOR[.PATCH]], a leading v and -pre-release or +build suffixes accepted
}

func ExampleParseRequirement() {
	r, _ := discovery.ParseRequirement("v2.3")
	for _, s := range []string{"2.2.9", "2.3.0", "2.10.4", "3.0.0"} {
		v, _ := discovery.ParseVersion(s)
		fmt.Println(s, r.Allows(v))
	}
	// Output:
	// 2.2.9 false
	// 2.3.0 true
	// 2.10.4 true
	// 3.0.0 false
}

func ExampleValidate() {
	err := discovery.Validate([]discovery.Instance{{Addr: "10.0.0.1:80", Version: "1.0"}, {Addr: "10.0.0.2:80", Version: "one"}})
	fmt.Println(err)
	// Output:
	// discovery: invalid instance: [1] "10.0.0.2:80": discovery: version "one": want MAJOR[.MINOR[.PATCH]], a leading v and -pre-release or +build suffixes accepted
}

func ExampleSelf() {
	// In a server: ln, _ := net.Listen("tcp", ":8080"); discovery.Self(ln.Addr().String(), "2.4.0")
	inst, err := discovery.Self("127.0.0.1:8080", "2.4.0")
	if err != nil {
		fmt.Println(err)
		return
	}
	keys := make([]string, 0, len(inst.Meta))
	for k := range inst.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println(inst.Addr, inst.Version, keys)
	// Output:
	// 127.0.0.1:8080 2.4.0 [hostname pid]
}
