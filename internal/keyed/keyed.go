// Package keyed holds one value per key (one breaker or bulkhead per
// endpoint) in a set bounded by least-recently-used eviction, so that hostile
// or unbounded keys (host names from user input) cannot grow memory without
// limit.
package keyed

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Set maps keys to values made on first use. It is safe for concurrent use.
type Set[V any] struct {
	make  func(key string) V
	cache *lru.Cache[string, V]
}

// New returns a Set holding at most size keys. make builds the value of a
// key on its first use; onEvict, if not nil, is called (outside any lock)
// with each value the bound pushes out.
func New[V any](size int, make func(key string) V, onEvict func(key string, v V)) (*Set[V], error) {
	if size <= 0 {
		return nil, fmt.Errorf("keyed: size %d, want > 0", size)
	}
	c, err := lru.NewWithEvict(size, onEvict)
	if err != nil {
		return nil, err
	}
	return &Set[V]{make: make, cache: c}, nil
}

// Get returns the value of key, making it on first use. Two racing first
// uses of one key both get the value that was stored first.
func (s *Set[V]) Get(key string) V {
	if v, ok := s.cache.Get(key); ok {
		return v
	}
	v := s.make(key)
	if prev, ok, _ := s.cache.PeekOrAdd(key, v); ok {
		return prev
	}
	return v
}

// Peek returns the value of key without making it or refreshing its recency.
func (s *Set[V]) Peek(key string) (V, bool) { return s.cache.Peek(key) }

// Len returns the number of keys held.
func (s *Set[V]) Len() int { return s.cache.Len() }

// Range calls f for every key held, oldest first, with no lock held while f
// runs. A key evicted during Range is skipped; one added is not visited.
func (s *Set[V]) Range(f func(key string, v V)) {
	for _, k := range s.cache.Keys() {
		if v, ok := s.cache.Peek(k); ok {
			f(k, v)
		}
	}
}
