package bulkhead_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

func mustNewSet(t testing.TB, cfg bulkhead.Config) *bulkhead.Set {
	t.Helper()
	s, err := bulkhead.NewSet(cfg)
	if err != nil {
		t.Fatalf("NewSet(%+v): got %v, want nil", cfg, err)
	}
	return s
}

func wantKeyCounts(t *testing.T, s *bulkhead.Set, key string, inFlight, queued int) {
	t.Helper()
	if got := s.InFlight(key); got != inFlight {
		t.Errorf("InFlight(%q): got %d, want %d", key, got, inFlight)
	}
	if got := s.Queued(key); got != queued {
		t.Errorf("Queued(%q): got %d, want %d", key, got, queued)
	}
}

func TestSetKeysIndependent(t *testing.T) {
	s := mustNewSet(t, bulkhead.Config{Limit: 2})
	a1 := mustEnter(t, s, t.Context(), "a")
	a2 := mustEnter(t, s, t.Context(), "a")
	_, err := s.Enter(t.Context(), "a")
	wantReason(t, err, bulkhead.ReasonNoQueue)
	var fe *bulkhead.FullError
	if errors.As(err, &fe) && (fe.Key != "a" || fe.Limit != 2) {
		t.Errorf("FullError: got Key %q Limit %d, want \"a\" 2", fe.Key, fe.Limit)
	}
	b1 := mustEnter(t, s, t.Context(), "b")
	b2 := mustEnter(t, s, t.Context(), "b")
	wantKeyCounts(t, s, "a", 2, 0)
	wantKeyCounts(t, s, "b", 2, 0)
	a1.Done(bulwark.Success)
	wantKeyCounts(t, s, "a", 1, 0)
	wantKeyCounts(t, s, "b", 2, 0)
	a2.Done(bulwark.Success)
	b1.Done(bulwark.Success)
	b2.Done(bulwark.Success)
	wantKeyCounts(t, s, "a", 0, 0)
	wantKeyCounts(t, s, "b", 0, 0)
	wantKeyCounts(t, s, "never", 0, 0)
}

func TestSetQueuePerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustNewSet(t, bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: time.Second})
		ha := mustEnter(t, s, t.Context(), "a")
		hb := mustEnter(t, s, t.Context(), "b")
		done := make(chan error, 2)
		for _, k := range []string{"a", "b"} {
			go func() {
				_, err := s.Enter(t.Context(), k)
				done <- err
			}()
		}
		synctest.Wait()
		wantKeyCounts(t, s, "a", 1, 1)
		wantKeyCounts(t, s, "b", 1, 1)
		_, err := s.Enter(t.Context(), "a")
		wantReason(t, err, bulkhead.ReasonQueueFull)
		wantReason(t, <-done, bulkhead.ReasonMaxWait)
		wantReason(t, <-done, bulkhead.ReasonMaxWait)
		ha.Done(bulwark.Success)
		hb.Done(bulwark.Success)
	})
}

func TestSetEvictionBound(t *testing.T) {
	const maxKeys = 8
	s := mustNewSet(t, bulkhead.Config{MaxKeys: maxKeys, Limit: 1})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := "hostile-" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				p, err := s.Enter(t.Context(), key)
				if err != nil {
					t.Errorf("Enter(%q): got %v, want nil", key, err)
					continue
				}
				p.Done(bulwark.Success)
				if n := s.Len(); n > maxKeys {
					t.Errorf("Len: got %d, want <= %d", n, maxKeys)
				}
			}
		})
	}
	wg.Wait()
	if n := s.Len(); n != maxKeys {
		t.Errorf("Len: got %d, want %d", n, maxKeys)
	}
}

// TestSetSparesBusyKeys: a key with an attempt running is not evicted, so
// its limit holds however many other keys come and go.
func TestSetSparesBusyKeys(t *testing.T) {
	s := mustNewSet(t, bulkhead.Config{MaxKeys: 2, Limit: 1})
	held := mustEnter(t, s, t.Context(), "a")
	for _, k := range []string{"b", "c", "d", "e"} {
		mustEnter(t, s, t.Context(), k).Done(bulwark.Success)
	}
	wantKeyCounts(t, s, "a", 1, 0)
	_, err := s.Enter(t.Context(), "a")
	wantReason(t, err, bulkhead.ReasonNoQueue)
	held.Done(bulwark.Success)
	wantKeyCounts(t, s, "a", 0, 0)
}

// TestSetReleaseAfterEviction: when every key is busy the bound wins and a
// busy key is evicted; its old Permit releases the old limit, and the key
// comes back with a fresh one that the old Permit does not touch.
func TestSetReleaseAfterEviction(t *testing.T) {
	s := mustNewSet(t, bulkhead.Config{MaxKeys: 1, Limit: 1})
	old := mustEnter(t, s, t.Context(), "a")
	mustEnter(t, s, t.Context(), "b").Done(bulwark.Success) // every key busy: evicts "a"
	if got := s.Len(); got != 1 {
		t.Errorf("Len: got %d, want 1", got)
	}
	wantKeyCounts(t, s, "a", 0, 0) // not held

	fresh := mustEnter(t, s, t.Context(), "a") // a fresh limit, though old still runs
	old.Done(bulwark.Success)
	wantKeyCounts(t, s, "a", 1, 0)
	_, err := s.Enter(t.Context(), "a")
	wantReason(t, err, bulkhead.ReasonNoQueue)
	fresh.Done(bulwark.Success)
	wantKeyCounts(t, s, "a", 0, 0)
}

func TestSetContextDone(t *testing.T) {
	mp, r := newReader()
	s := mustNewSet(t, bulkhead.Config{Limit: 1, MeterProvider: mp})
	defer mustEnter(t, s, t.Context(), "held").Done(bulwark.Success)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, key := range []string{"held", "new"} {
		if _, err := s.Enter(ctx, key); !errors.Is(err, context.Canceled) {
			t.Errorf("Enter(%q): got %v, want %v", key, err, context.Canceled)
		}
	}
	if got := s.Len(); got != 1 {
		t.Errorf("Len: got %d, want 1 (no key created)", got)
	}
	wantKeyCounts(t, s, "held", 1, 0)
	if got := points(t, r, "bulwark.bulkhead.rejected"); len(got) != 0 {
		t.Errorf("rejected: got %v, want no rejection", got)
	}
}

func TestSetMetrics(t *testing.T) {
	mp, r := newReader()
	s := mustNewSet(t, bulkhead.Config{Limit: 2, MaxKeys: 2, MeterProvider: mp})
	a := mustEnter(t, s, t.Context(), "a")
	b1 := mustEnter(t, s, t.Context(), "b")
	b2 := mustEnter(t, s, t.Context(), "b")
	_, err := s.Enter(t.Context(), "b")
	wantReason(t, err, bulkhead.ReasonNoQueue)

	check := func(name string, want map[string]int64) {
		t.Helper()
		got := points(t, r, name)
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s{%s}: got %d, want %d", name, k, got[k], v)
			}
		}
	}
	check("bulwark.bulkhead.in_flight", map[string]int64{"bulwark.key=a": 1, "bulwark.key=b": 2})
	check("bulwark.bulkhead.queued", map[string]int64{"bulwark.key=a": 0, "bulwark.key=b": 0})
	check("bulwark.bulkhead.limit", map[string]int64{"bulwark.key=a": 2, "bulwark.key=b": 2})
	check("bulwark.bulkhead.rejected", map[string]int64{"bulwark.bulkhead.reason=no_queue,bulwark.key=b": 1})

	mustEnter(t, s, t.Context(), "c").Done(bulwark.Success) // evicts "a"
	check("bulwark.bulkhead.in_flight", map[string]int64{"bulwark.key=b": 2, "bulwark.key=c": 0})
	a.Done(bulwark.Success)
	b1.Done(bulwark.Success)
	b2.Done(bulwark.Success)
	check("bulwark.bulkhead.in_flight", map[string]int64{"bulwark.key=b": 0, "bulwark.key=c": 0})
}

func TestCloseStopsReporting(t *testing.T) {
	mp, r := newReader()
	b := mustNew(t, bulkhead.Config{Name: "one", MeterProvider: mp})
	s := mustNewSet(t, bulkhead.Config{MeterProvider: mp})
	defer mustEnter(t, b, t.Context(), "").Done(bulwark.Success)
	defer mustEnter(t, s, t.Context(), "k").Done(bulwark.Success)
	if got := points(t, r, "bulwark.bulkhead.in_flight"); len(got) != 2 {
		t.Fatalf("before Close: got %v, want the Bulkhead's and the Set's key", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := points(t, r, "bulwark.bulkhead.in_flight"); len(got) != 0 {
		t.Fatalf("after Close: got %v, want nothing reported", got)
	}
}
