// Package keyed holds one value per key (one breaker or bulkhead per
// endpoint) in a set of bounded size, so that hostile or unbounded keys
// (host names from user input) cannot grow memory without limit.
//
// Eviction is CLOCK (second chance), the classic approximation of
// least-recently-used: every use of a key marks it, and when the set is full
// a hand sweeps the keys, unmarking marked ones and evicting the first
// unmarked one. A key in steady use therefore survives a flood of new keys;
// a new key starts unmarked, so a flood of one-off keys mostly evicts itself.
// A key survives as long as it is used at least once per turn of the hand
// (every size new keys), or while it is busy.
// Unlike an exact LRU list, a lookup of a present key takes no lock and writes
// nothing shared unless the key's mark was clear, or its slot in the table of
// recent entries (below) held another key: it is on every attempt's path,
// twice (breaker and bulkhead).
//
// Before the map, a lookup tries a small direct-mapped table of recently
// used entries, one slot per hash of the key: one load and a comparison,
// where the map walks several levels of nodes. Between two calls over the
// network those nodes have left the processor's caches, and each level is
// a miss.
package keyed

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// hotSlots is the size of the table of recent entries (a power of two).
const hotSlots = 32

// Set maps keys to values made on first use. It is safe for concurrent use.
type Set[V any] struct {
	build   func(key string) V
	onEvict func(key string, v V)
	busy    func(V) bool
	size    int
	m       sync.Map // string → *entry[V]; every entry is also in ring

	mu   sync.Mutex
	ring []*entry[V]
	hand int

	seed maphash.Seed
	hot  [hotSlots]atomic.Pointer[entry[V]] // recent entries, by hash of key
}

type entry[V any] struct {
	key     string
	v       V
	used    atomic.Bool
	evicted atomic.Bool // set before the entry leaves the map: a hot slot may still hold it
}

// New returns a Set holding at most size keys. build makes the value of a
// key on its first use; onEvict, if not nil, is called (outside any lock)
// with each value the bound pushes out. busy, if not nil, spares a value in
// use (attempts in flight on it) from eviction, as if it had just been used,
// unless every key stays busy for two turns of the hand: the bound on memory
// wins over it.
func New[V any](size int, build func(key string) V, onEvict func(key string, v V), busy func(V) bool) (*Set[V], error) {
	if size <= 0 {
		return nil, fmt.Errorf("keyed: size %d, want > 0", size)
	}
	return &Set[V]{build: build, onEvict: onEvict, busy: busy, size: size, ring: make([]*entry[V], 0, min(size, 64)), seed: maphash.MakeSeed()}, nil
}

// Get returns the value of key, making it on first use. Two racing first
// uses of one key both get the value that was stored first.
func (s *Set[V]) Get(key string) V {
	slot := &s.hot[maphash.String(s.seed, key)&(hotSlots-1)]
	e := slot.Load()
	if e == nil || e.key != key || e.evicted.Load() {
		m, ok := s.m.Load(key)
		if !ok {
			return s.add(key)
		}
		e = m.(*entry[V])
		slot.Store(e) // an entry evicted meanwhile is flagged: the next lookup passes it by
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e.v
}

func (s *Set[V]) add(key string) V {
	fresh := &entry[V]{key: key, v: s.build(key)} // outside the lock: build may be slow
	var victim *entry[V]
	s.mu.Lock()
	if e, ok := s.m.Load(key); ok { // lost a race to another first use
		s.mu.Unlock()
		return e.(*entry[V]).v
	}
	if len(s.ring) < s.size {
		s.ring = append(s.ring, fresh)
	} else {
		// Second chance: unmark marked keys until an unmarked one comes
		// round. Callers may mark keys again while the hand moves, so after
		// two full turns the key under the hand goes regardless.
		for range 2 * s.size {
			e := s.ring[s.hand]
			if !e.used.Swap(false) && (s.busy == nil || !s.busy(e.v)) {
				break
			}
			s.hand = (s.hand + 1) % s.size
		}
		victim = s.ring[s.hand]
		victim.evicted.Store(true)
		s.m.Delete(victim.key)
		s.ring[s.hand] = fresh
		s.hand = (s.hand + 1) % s.size
	}
	s.m.Store(key, fresh)
	s.mu.Unlock()
	if victim != nil && s.onEvict != nil {
		s.onEvict(victim.key, victim.v)
	}
	return fresh.v
}

// Peek returns the value of key without making it or marking it used.
func (s *Set[V]) Peek(key string) (V, bool) {
	if e, ok := s.m.Load(key); ok {
		return e.(*entry[V]).v, true
	}
	var zero V
	return zero, false
}

// Len returns the number of keys held.
func (s *Set[V]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ring)
}

// Range calls f for every key held, in no particular order, on a snapshot
// taken under the set's lock; no lock is held while f runs.
func (s *Set[V]) Range(f func(key string, v V)) {
	s.mu.Lock()
	snap := append([]*entry[V](nil), s.ring...)
	s.mu.Unlock()
	for _, e := range snap {
		f(e.key, e.v)
	}
}
