package etcd_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/discovery/etcd"
)

func TestWatchKeepsLastSetWhileEtcdIsDown(t *testing.T) {
	s := newServer(t)
	cfg := fastConfig(newClient(t, s.Endpoint), nil)
	// The registering process must keep its lease through the outage.
	cfg.LeaseTTL = 3 * time.Second
	r := newRegistry(t, cfg)
	if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	mp, rd := newReader()
	watcher := newRegistry(t, fastConfig(newClient(t, s.Endpoint), mp))
	w := startWatch(t, watcher, "users")
	w.Until(t, "the instance", is("a:1"))

	s.Stop()
	start := time.Now()
	got, err := watcher.Resolve(t.Context(), "users")
	if err != nil || !is("a:1")(got) {
		t.Errorf("Resolve while etcd is down: got %v, %v, want the last set [a:1], nil", addrs(got), err)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("Resolve while etcd is down: returned after %v, want >= Config.RequestTimeout (500ms): did it reach etcd?", took)
	}
	// Nothing was confirmed since etcd stopped, at least 500ms ago.
	stale := metricPoints(t, rd, "bulwark.discovery.etcd.staleness")["bulwark.key=users"]
	if stale < 0.5 {
		t.Errorf("staleness while etcd is down: got %vs, want >= 0.5s", stale)
	}

	if err := s.Start(); err != nil {
		t.Fatalf("restarting etcd: %v", err)
	}
	other := newRegistry(t, fastConfig(newClient(t, s.Endpoint), nil))
	if _, err := other.Register(t.Context(), "users", discovery.Instance{Addr: "b:2"}); err != nil {
		t.Fatalf("Register after restart: %v", err)
	}
	w.Until(t, "both instances after the restart", is("a:1", "b:2"))
	if after := metricPoints(t, rd, "bulwark.discovery.etcd.staleness")["bulwark.key=users"]; after >= stale {
		t.Errorf("staleness after catching up: got %vs, want less than the %vs of the outage", after, stale)
	}
	if _, empties := w.Counts(); empties != 0 {
		t.Errorf("empty sets during the outage: got %d, want 0", empties)
	}
}

func TestWatchRewatchesAfterCompaction(t *testing.T) {
	s := newServer(t)
	admin := newClient(t, s.Direct)
	r := newRegistry(t, fastConfig(admin, nil))
	deregister, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "a:1"})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	mp, rd := newReader()
	watcher := newRegistry(t, fastConfig(newClient(t, s.Endpoint), mp))
	w := startWatch(t, watcher, "users")
	w.Until(t, "the instance", is("a:1"))

	// While the watcher is cut off, the set changes and etcd compacts the
	// history it would resume from.
	s.proxy.Cut()
	if err := deregister(t.Context()); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	if _, err := r.Register(t.Context(), "users", discovery.Instance{Addr: "b:2"}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	resp, err := admin.Get(t.Context(), "/")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, err := admin.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	s.proxy.Heal()

	w.Until(t, "the set read again after compaction", is("b:2"))
	if got := metricPoints(t, rd, "bulwark.discovery.etcd.rewatches")["bulwark.discovery.reason=compacted,bulwark.key=users"]; got != 1 {
		t.Errorf("rewatches after compaction: got %v, want 1", got)
	}
}

func TestWatchSkipsUnreadableValues(t *testing.T) {
	s := newServer(t)
	admin := newClient(t, s.Direct)
	mp, rd := newReader()
	r := newRegistry(t, fastConfig(admin, mp))
	for k, v := range map[string]string{
		"bad1":  "not json",
		"bad2":  `{"addr":""}`,
		"bad3":  `{"addr":"a:1","weight":-2}`,
		"ok":    `{"addr":"b:2","version":"2.0.0"}`,
		"extra": `{"addr":"c:3","future":true}`,
	} {
		if _, err := admin.Put(t.Context(), key+k, v); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	invalid := func() float64 {
		return metricPoints(t, rd, "bulwark.discovery.etcd.invalid_values")["bulwark.key=users"]
	}

	got, err := r.Resolve(t.Context(), "users")
	if err != nil || !is("b:2", "c:3")(got) {
		t.Errorf("Resolve: got %v, %v, want [b:2 c:3], nil", addrs(got), err)
	}
	if n := invalid(); n != 3 {
		t.Errorf("invalid values after Resolve: got %v, want 3", n)
	}
	w := startWatch(t, r, "users")
	w.Until(t, "the readable instances", is("b:2", "c:3"))
	if n := invalid(); n != 6 {
		t.Errorf("invalid values after Watch's read: got %v, want 6", n)
	}

	// An instance overwritten with garbage is one no more.
	if _, err := admin.Put(t.Context(), key+"ok", "{"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	w.Until(t, "the overwritten instance gone", is("c:3"))
	if n := invalid(); n != 7 {
		t.Errorf("invalid values after the event: got %v, want 7", n)
	}
	// Two keys naming one address: the one written last wins.
	if _, err := admin.Put(t.Context(), key+"again", `{"addr":"c:3","weight":5}`); err != nil {
		t.Fatalf("Put: %v", err)
	}
	w.Until(t, "the later duplicate", func(set []discovery.Instance) bool { return len(set) == 1 && set[0].Weight == 5 })
}

func TestWatchPassesOnlyChanges(t *testing.T) {
	s := newServer(t)
	admin := newClient(t, s.Direct)
	c := newClient(t, s.Endpoint)
	tee := teeProgress(c)
	r := newRegistry(t, fastConfig(c, nil))
	w := startWatch(t, r, "users")
	w.Until(t, "the first, empty set", is())
	for i, v := range []string{
		`{"addr":"a:1","meta":{"zone":"x"}}`,
		// The same instance written again (as when it registers again
		// under a new lease): no change to pass on.
		`{"addr":"a:1","meta":{"zone":"x"}}`,
		`{"meta":{"zone":"x"},"addr":"a:1"}`,
		`{"addr":"a:1","meta":{"zone":"y"}}`,
	} {
		if _, err := admin.Put(t.Context(), key+"a:1", v); err != nil {
			t.Fatalf("Put: %v", err)
		}
		// One write at a time, lest etcd send several in one response.
		tee.awaitEvents(t, i+1)
	}
	w.Until(t, "the changed metadata", func(set []discovery.Instance) bool { return len(set) == 1 && set[0].Meta["zone"] == "y" })
	if updates, _ := w.Counts(); updates != 3 {
		t.Errorf("updates: got %d, want 3 (empty, a in zone x, a in zone y)", updates)
	}
}

func TestWatchAnswersAtOnceWithoutEtcd(t *testing.T) {
	dead, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	mp, rd := newReader()
	r := newRegistry(t, fastConfig(newClient(t, dead[0]), mp))
	// No set known and no etcd: the caller hears "none" rather than
	// nothing, and Resolve says why.
	w := startWatch(t, r, "users")
	w.Until(t, "an empty set", is())
	if _, err := r.Resolve(t.Context(), "users"); err == nil || !strings.Contains(err.Error(), `"users"`) {
		t.Errorf("Resolve with no etcd and no set known: got %s, want an error naming the service", errorString(err))
	}
	if stale := metricPoints(t, rd, "bulwark.discovery.etcd.staleness")["bulwark.key=users"]; stale <= 0 {
		t.Errorf("staleness with no etcd: got %vs, want > 0", stale)
	}
	if err := w.Stop(t); err != nil {
		t.Errorf("Watch: got %v, want nil when its context ends", err)
	}
}

func TestWatchRejectsBadArguments(t *testing.T) {
	r := newRegistry(t, etcd.Config{Endpoints: []string{"127.0.0.1:1"}})
	nop := func([]discovery.Instance) {}
	tests := []struct {
		name    string
		service string
		update  func([]discovery.Instance)
		want    string
	}{
		{"empty service", "", nop, "service name is empty"},
		{"slash in service", "a/b", nop, `"a/b"`},
		{"nil update", "users", nil, "update is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Watch(t.Context(), tt.service, tt.update); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Watch: got %s, want an error containing %s", errorString(err), tt.want)
			}
			if tt.update == nil {
				return
			}
			if _, err := r.Resolve(t.Context(), tt.service); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Resolve: got %s, want an error containing %s", errorString(err), tt.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Watch(ctx, "users", nop); err != nil {
		t.Errorf("Watch with a context already done: got %v, want nil", err)
	}
}

func TestWatchStopsWhenContextEnds(t *testing.T) {
	s := newServer(t)
	r := newRegistry(t, fastConfig(newClient(t, s.Endpoint), nil))
	for range 3 {
		w := startWatch(t, r, "users")
		w.Until(t, "the first set", is())
		if err := w.Stop(t); err != nil {
			t.Errorf("Watch: got %v, want nil", err)
		}
	}
	// goleak, in TestMain, checks that each left nothing running.
}

func TestWatchAsksEtcdToConfirm(t *testing.T) {
	s := newServer(t)
	c := newClient(t, s.Endpoint)
	notes := teeProgress(c)
	mp, rd := newReader()
	r := newRegistry(t, fastConfig(c, mp))
	w := startWatch(t, r, "users")
	w.Until(t, "the first set", is())

	// Nothing changes in etcd: only the watch's progress requests can
	// bring it responses.
	notes.await(t, 3)
	if stale := metricPoints(t, rd, "bulwark.discovery.etcd.staleness")["bulwark.key=users"]; stale > 2 {
		t.Errorf("staleness of a confirmed watch: got %vs, want < 2s (ProgressInterval is 50ms)", stale)
	}

	// A broken stream resumes where etcd confirms nothing; the watch
	// notices the silence, reads again and is confirmed anew.
	s.proxy.Cut()
	s.proxy.Heal()
	notes.reset()
	notes.await(t, 3)
}

// progressTee counts the progress notifications, and the responses
// carrying events, that reach the watches of a client.
type progressTee struct {
	clientv3.Watcher
	mu     sync.Mutex
	notes  int
	events int
	heard  chan struct{} // a buffer of one: a response came
}

// teeProgress makes c's watches pass through a progressTee.
func teeProgress(c *clientv3.Client) *progressTee {
	p := &progressTee{Watcher: c.Watcher, heard: make(chan struct{}, 1)}
	c.Watcher = p
	return p
}

func (p *progressTee) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := p.Watcher.Watch(ctx, key, opts...)
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		for resp := range in {
			select {
			case out <- resp:
			case <-ctx.Done():
				// The etcd client closes in once ctx ends; drain it.
			}
			// Counted once passed on, so that a waiter that hears of it
			// knows the watch has it.
			p.mu.Lock()
			if resp.IsProgressNotify() {
				p.notes++
			} else if len(resp.Events) > 0 {
				p.events++
			}
			p.mu.Unlock()
			select {
			case p.heard <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// reset forgets the notifications so far.
func (p *progressTee) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notes = 0
}

// await waits for n notifications since the last reset.
func (p *progressTee) await(t *testing.T, n int) {
	t.Helper()
	p.wait(t, "progress notifications", n, func() int { return p.notes })
}

// awaitEvents waits for n responses carrying events.
func (p *progressTee) awaitEvents(t *testing.T, n int) {
	t.Helper()
	p.wait(t, "responses with events", n, func() int { return p.events })
}

func (p *progressTee) wait(t *testing.T, what string, n int, count func() int) {
	t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		p.mu.Lock()
		got := count()
		p.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-p.heard:
		case <-timer.C:
			t.Fatalf("%s: got %d in %v, want %d", what, got, patience, n)
		}
	}
}
