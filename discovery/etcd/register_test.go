package etcd_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/discovery/etcd"
)

const key = "/bulwark/services/users/"

func TestRegisterPublishesEveryField(t *testing.T) {
	s := newServer(t)
	mp, rd := newReader()
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), mp))
	admin := newClient(t, s.Direct)
	w := startWatch(t, r, "users")
	w.Until(t, "the first, empty set", is())

	inst := discovery.Instance{Addr: "10.0.0.1:8080", Version: "1.4.2", Weight: 3, Meta: map[string]string{"zone": "a"}}
	deregister, err := r.Register(t.Context(), "users", inst)
	if err != nil {
		t.Fatalf("Register: got %v, want nil", err)
	}
	got := w.Until(t, "the registered instance", is(inst.Addr))
	if !reflect.DeepEqual(got[0], inst) {
		t.Errorf("watched: got %+v, want %+v", got[0], inst)
	}
	res, err := r.Resolve(t.Context(), "users")
	if err != nil || len(res) != 1 || !reflect.DeepEqual(res[0], inst) {
		t.Errorf("Resolve: got %+v, %v, want [%+v], nil", res, err, inst)
	}

	// The stored value is plain JSON that other tools can read.
	kv, err := admin.Get(t.Context(), key+inst.Addr)
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("Get %s: got %v, %v, want one key", key+inst.Addr, kv, err)
	}
	var stored map[string]any
	if err := json.Unmarshal(kv.Kvs[0].Value, &stored); err != nil {
		t.Fatalf("stored value %s: %v", kv.Kvs[0].Value, err)
	}
	want := map[string]any{"addr": inst.Addr, "version": "1.4.2", "weight": 3.0, "meta": map[string]any{"zone": "a"}}
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("stored value: got %v, want %v", stored, want)
	}
	lease := clientv3.LeaseID(kv.Kvs[0].Lease)
	if lease == 0 {
		t.Errorf("stored key: got no lease, want one")
	}
	if got := metricPoints(t, rd, "bulwark.discovery.etcd.instances")["bulwark.key=users"]; got != 1 {
		t.Errorf("instances gauge: got %v, want 1", got)
	}

	// Graceful deregistration: the key goes at once, with its lease.
	if err := deregister(t.Context()); err != nil {
		t.Fatalf("deregister: got %v, want nil", err)
	}
	w.Until(t, "an empty set after deregistration", is())
	if kv, err := admin.Get(t.Context(), key+inst.Addr); err != nil || len(kv.Kvs) != 0 {
		t.Errorf("Get after deregister: got %v, %v, want no key", kv.Kvs, err)
	}
	if ttl, err := admin.TimeToLive(t.Context(), lease); err != nil || ttl.TTL != -1 {
		t.Errorf("lease after deregister: got TTL %v, %v, want -1 (revoked)", ttl.TTL, err)
	}
	if err := deregister(t.Context()); err != nil {
		t.Errorf("second deregister: got %v, want nil", err)
	}
}

func TestRegisterRejectsBadInput(t *testing.T) {
	s := newServer(t)
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), nil))
	admin := newClient(t, s.Direct)
	tests := []struct {
		name    string
		service string
		inst    discovery.Instance
		want    string
		invalid bool // the error matches discovery.ErrInvalidInstance
	}{
		{"empty service", "", discovery.Instance{Addr: "a:1"}, "service name is empty", false},
		{"slash in service", "a/b", discovery.Instance{Addr: "a:1"}, `"a/b"`, false},
		{"empty address", "users", discovery.Instance{}, "Addr is empty", true},
		{"no port", "users", discovery.Instance{Addr: "host"}, "not host:port", true},
		{"empty host", "users", discovery.Instance{Addr: ":80"}, "not host:port", true},
		{"empty port", "users", discovery.Instance{Addr: "host:"}, "not host:port", true},
		{"negative weight", "users", discovery.Instance{Addr: "a:1", Weight: -1}, "Weight", true},
		{"bad version", "users", discovery.Instance{Addr: "a:1", Version: "one"}, `Version "one"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deregister, err := r.Register(t.Context(), tt.service, tt.inst)
			if err == nil {
				deregister(t.Context())
				t.Fatalf("Register: got nil error, want one containing %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Register: got %q, want an error containing %s", err, tt.want)
			}
			if got := errors.Is(err, discovery.ErrInvalidInstance); got != tt.invalid {
				t.Errorf("Register: got errors.Is(err, ErrInvalidInstance) %v, want %v", got, tt.invalid)
			}
		})
	}
	if kv, err := admin.Get(t.Context(), "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || kv.Count != 0 {
		t.Errorf("keys after bad registrations: got %v, %v, want 0", kv.Count, err)
	}
}

func TestRegisterFailsWithoutEtcd(t *testing.T) {
	dead, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, fastConfig(newClient(t, dead[0]), nil))
	_, err = r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"})
	if err == nil || !strings.Contains(err.Error(), `"users"`) {
		t.Errorf("Register with no etcd: got %s, want an error naming the service", errorString(err))
	}
}

func TestInstanceDisappearsWhenItsProcessDies(t *testing.T) {
	s := newServer(t)
	watcher := newRegistry(t, fastConfig(newClient(t, s.Direct), nil))
	w := startWatch(t, watcher, "users")

	// The dying process: its client closes without revoking anything, as
	// when the process is killed.
	dying := newClient(t, s.Endpoint)
	r := newRegistry(t, fastConfig(dying, nil))
	if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	w.Until(t, "the instance", is("a:1"))
	dying.Close()
	w.Until(t, "an empty set once the 1s lease expires", is())
}

func TestRegisterAgainWhenLeaseIsLost(t *testing.T) {
	s := newServer(t)
	mp, rd := newReader()
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), mp))
	admin := newClient(t, s.Direct)
	if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1", Version: "2.0.0"}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	kv, err := admin.Get(t.Context(), key+"a:1")
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatalf("Get: got %v, %v, want one key", kv, err)
	}
	old := clientv3.LeaseID(kv.Kvs[0].Lease)

	// Someone revokes the lease, as an etcd restored without it would
	// lose it: the key goes, and the Registry puts it back.
	rev, err := admin.Revoke(t.Context(), old)
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	for resp := range admin.Watch(ctx, key+"a:1", clientv3.WithRev(rev.Header.Revision+1)) {
		for _, ev := range resp.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			if got := clientv3.LeaseID(ev.Kv.Lease); got == old || got == 0 {
				t.Errorf("registered again: got lease %x, want a new one (old %x)", got, old)
			}
			if !strings.Contains(string(ev.Kv.Value), `"version":"2.0.0"`) {
				t.Errorf("registered again: got value %s, want the same instance", ev.Kv.Value)
			}
			cancel()
		}
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("waited %v for the key to come back", patience)
	}
	if got := metricPoints(t, rd, "bulwark.discovery.etcd.reregistrations")["bulwark.key=users"]; got != 1 {
		t.Errorf("reregistrations: got %v, want 1", got)
	}
}

func TestRegisterAgainAfterPartition(t *testing.T) {
	s := newServer(t)
	watcher := newRegistry(t, fastConfig(newClient(t, s.Direct), nil))
	w := startWatch(t, watcher, "users")
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), nil))
	if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	w.Until(t, "the instance", is("a:1"))

	// The registering process loses etcd for longer than its lease: etcd
	// deletes the key; when the partition heals the process comes back.
	s.proxy.Cut()
	w.Until(t, "an empty set once the lease expires", is())
	s.proxy.Heal()
	w.Until(t, "the instance registered again", is("a:1"))
}

func TestCloseDeregistersAndStopsEverything(t *testing.T) {
	s := newServer(t)
	watcher := newRegistry(t, fastConfig(newClient(t, s.Direct), nil))
	w := startWatch(t, watcher, "users")
	r, err := etcd.NewRegistry(etcd.Config{Endpoints: []string{s.Endpoint}, LeaseTTL: 10 * time.Second})
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	for _, a := range []string{"a:1", "b:2"} {
		if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: a}); err != nil {
			t.Fatalf("Register %s: %v", a, err)
		}
	}
	own := startWatch(t, r, "users")
	own.Until(t, "both instances", is("a:1", "b:2"))
	w.Until(t, "both instances", is("a:1", "b:2"))

	if err := r.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	// With a 10s lease, only revocation removes them this soon.
	w.Until(t, "an empty set after Close", is())
	if err := own.Stop(t); !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Watch ended by Close: got %s, want ErrClosed", errorString(err))
	}
	if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "c:3"}); !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Register after Close: got %s, want ErrClosed", errorString(err))
	}
	if _, err := r.Resolve(t.Context(), "users"); !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Resolve after Close: got %s, want ErrClosed", errorString(err))
	}
	if err := r.Watch(t.Context(), "users", func([]discovery.Instance) {}); !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Watch after Close: got %s, want ErrClosed", errorString(err))
	}
}

func TestRegisterRefusesAnAddressTwice(t *testing.T) {
	s := newServer(t)
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), nil))
	inst := discovery.Instance{Addr: "a:1"}
	deregister, err := r.Register(t.Context(), "users", inst)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if _, err := r.Register(t.Context(), "users", inst); err == nil || !strings.Contains(err.Error(), "registered already") {
		t.Errorf("second Register: got %s, want an error saying it is registered already", errorString(err))
	}
	// Another service may have an instance at the same address.
	if _, err := r.Register(t.Context(), "orders", inst); err != nil {
		t.Errorf("Register in another service: got %v, want nil", err)
	}
	if err := deregister(t.Context()); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	if _, err := r.Register(t.Context(), "users", inst); err != nil {
		t.Errorf("Register after deregister: got %v, want nil", err)
	}
}

func TestNewRegistryWaitsDialTimeout(t *testing.T) {
	s := newServer(t)
	dead, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := etcd.NewRegistry(etcd.Config{Endpoints: []string{s.Endpoint}, DialTimeout: patience})
	if err != nil {
		t.Fatalf("NewRegistry with etcd up: got %v, want nil", err)
	}
	r.Close()
	r, err = etcd.NewRegistry(etcd.Config{Endpoints: []string{dead[0]}, DialTimeout: 200 * time.Millisecond})
	if err == nil {
		r.Close()
		t.Fatal("NewRegistry with etcd down: got nil error, want one naming Config.DialTimeout")
	}
	if !strings.Contains(err.Error(), "Config.DialTimeout") {
		t.Errorf("NewRegistry with etcd down: got %q, want an error naming Config.DialTimeout", err)
	}
}

// leaseTee passes a client's lease calls through, telling a test when a
// grant or a revocation begins; a revocation waits for gate.
type leaseTee struct {
	clientv3.Lease
	granting chan struct{} // a buffer of one: a grant began
	revoking chan struct{} // a buffer of one: a revocation began
	gate     chan struct{} // closed to let revocations through
}

func teeLease(c *clientv3.Client) *leaseTee {
	l := &leaseTee{Lease: c.Lease, granting: make(chan struct{}, 1), revoking: make(chan struct{}, 1), gate: make(chan struct{})}
	c.Lease = l
	return l
}

func (l *leaseTee) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	select {
	case l.granting <- struct{}{}:
	default:
	}
	return l.Lease.Grant(ctx, ttl)
}

func (l *leaseTee) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	select {
	case l.revoking <- struct{}{}:
	default:
	}
	select {
	case <-l.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return l.Lease.Revoke(ctx, id)
}

// await waits for ch, at most patience.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("waited %v for %s", patience, what)
	}
}

// awaitClosing waits until Close has begun on r: r refuses calls.
func awaitClosing(t *testing.T, r *etcd.Registry) {
	t.Helper()
	done, cancel := context.WithCancel(t.Context())
	cancel() // a call on an open r fails at once, on its context
	for start := time.Now(); ; runtime.Gosched() {
		if _, err := r.Resolve(done, "users"); errors.Is(err, etcd.ErrClosed) {
			return
		}
		if time.Since(start) > patience {
			t.Fatalf("Close did not begin within %v", patience)
		}
	}
}

// Close while a Register waits for etcd: the Register ends with ErrClosed,
// and neither its key nor its lease is left behind once etcd answers.
func TestCloseDuringRegistration(t *testing.T) {
	s := newServer(t)
	admin := newClient(t, s.Direct)
	c := newClient(t, s.Endpoint)
	cfg := fastConfig(c, nil)
	cfg.RequestTimeout = patience // the Register waits for etcd to come back
	r, err := etcd.NewRegistry(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := teeLease(c)
	close(l.gate)
	s.proxy.Cut()
	registered := make(chan error, 1)
	go func() {
		_, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"})
		registered <- err
	}()
	await(t, l.granting, "the Register to ask etcd for a lease")
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	awaitClosing(t, r)
	s.proxy.Heal()

	if err := <-registered; !errors.Is(err, etcd.ErrClosed) {
		t.Errorf("Register during Close: got %s, want ErrClosed", errorString(err))
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if kv, err := admin.Get(t.Context(), key, clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || kv.Count != 0 {
		t.Errorf("keys after Close: got %v, %v, want 0", kv.Count, err)
	}
	if ls, err := admin.Leases(t.Context()); err != nil || len(ls.Leases) != 0 {
		t.Errorf("leases after Close: got %v, %v, want none", ls.Leases, err)
	}
}

// Close while a deregistration is revoking its lease: Close waits for the
// revocation rather than close the client under it, so the key goes at
// once and is not left to its lease's expiry.
func TestCloseWaitsForADeregistrationUnderWay(t *testing.T) {
	s := newServer(t)
	admin := newClient(t, s.Direct)
	r, err := etcd.NewRegistry(etcd.Config{Endpoints: []string{s.Endpoint}, LeaseTTL: 10 * time.Second, RequestTimeout: patience})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Client()
	l := teeLease(c)
	deregister, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	deregistered := make(chan error, 1)
	go func() { deregistered <- deregister(context.Background()) }()
	await(t, l.revoking, "the deregistration to revoke its lease")
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	awaitClosing(t, r)
	select {
	case <-c.Ctx().Done():
		t.Error("Close closed its client while a deregistration was revoking its lease")
	case <-time.After(200 * time.Millisecond): // a bounded look: Close has long reached the client by now, if it does
	}
	close(l.gate)
	if err := <-deregistered; err != nil {
		t.Errorf("deregister: got %v, want nil", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	if kv, err := admin.Get(t.Context(), key+"a:1"); err != nil || len(kv.Kvs) != 0 {
		t.Errorf("key after deregister and Close: got %v, %v, want none (the lease revoked)", kv.Kvs, err)
	}
}

// A deregistration that could not revoke its lease (its context was done)
// reports it, and so does every later call: it is not retried (the key
// goes when its lease expires), and no later call claims it succeeded.
func TestDeregisterAgainReportsTheFirstResult(t *testing.T) {
	s := newServer(t)
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), nil))
	deregister, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	first := deregister(done)
	if !errors.Is(first, context.Canceled) {
		t.Fatalf("deregister with a done context: got %s, want context.Canceled", errorString(first))
	}
	if again := deregister(t.Context()); again != first {
		t.Errorf("second deregister: got %s, want the first's %s", errorString(again), errorString(first))
	}
}
