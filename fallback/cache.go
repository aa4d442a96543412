package fallback

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark"
)

// Defaults, stated in the field comments of CacheConfig.
const (
	// defaultStaleWindow is how long past FreshFor a value may still be
	// served on error: long enough to ride out the outages a breaker and
	// retries cannot hide (a deploy, a failover, several open periods of a
	// breaker), short enough that what is served is minutes old, not
	// hours. Data that must never be that old wants a smaller MaxStale.
	defaultStaleWindow = 5 * time.Minute
	defaultMaxEntries  = 10_000
)

// CacheConfig configures a Cache. The zero CacheConfig is valid: a pure
// stale-on-error cache of up to 10,000 values, each served on error for 5
// minutes after it was stored, with no byte bound.
type CacheConfig[T any] struct {
	// FreshFor is how long after it was stored a value answers the call
	// outright, without running it (Lookup). Zero means never: the call
	// always runs, and the cache only answers when it fails.
	FreshFor time.Duration
	// MaxStale is how old (since it was stored) a value may be and still
	// be served instead of a failure (Recover). It must not be shorter
	// than FreshFor. Zero means FreshFor plus 5 minutes.
	MaxStale time.Duration
	// MaxEntries bounds the number of values held; beyond it, the least
	// recently used goes. Zero means 10,000.
	MaxEntries int
	// MaxBytes bounds the sum of the sizes of the values held, as Size
	// measures them; beyond it, the least recently used go. A value larger
	// than MaxBytes is not cached at all. Setting it requires Size. Zero
	// means no byte bound.
	MaxBytes int64
	// Size measures a value, in bytes, for MaxBytes and the
	// bulwark.fallback.cache.bytes gauge. It is called once per Store, on
	// the caller's goroutine and outside every lock. A value it sizes as
	// negative is not cached. Nil means values are not measured.
	Size func(T) int
	// When decides whether a failed call is answered from the cache; it
	// is never asked about a caller whose own context ended (see Default).
	// Nil means Default.
	When func(ctx context.Context, err error) bool
	// Name is reported in the bulwark.key attribute of the metrics, which
	// keeps several caches on one MeterProvider apart. Zero means "".
	Name string
	// MeterProvider receives the bulwark.fallback.* instruments. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
}

// Cache is a bulwark.Fallback holding the last good result of each call,
// by the key the caller gives (the Pipeline's key: the same key means the
// same question). Within FreshFor of being stored, a value answers the call
// without running it; a call that fails is answered with the value if it is
// at most MaxStale old. A caller tells the two apart with a Note (see
// WithNote): SourceCacheFresh or SourceCacheStale, and the value's Age.
//
// The cache is bounded in entries and, given Size, in bytes, and evicts the
// least recently used value first (a fresh or a stale answer is a use). A
// value found older than MaxStale is dropped when it is found; nothing runs
// in the background. Every caller of a key is handed the same T: cache only
// values that are safe to share (immutable, or copied by the caller).
//
// A Cache is safe for concurrent use: one mutex guards it, held for a map
// lookup and a few pointer moves, and a hit allocates nothing. Build it
// with NewCache; Close it when done with it.
type Cache[T any] struct {
	fresh      time.Duration
	maxStale   time.Duration
	maxEntries int
	maxBytes   int64
	size       func(T) int
	when       func(context.Context, error) bool
	used       used

	entries, bytesGauge metric.Int64ObservableGauge
	lookups             metric.Int64ObservableCounter
	nameOpt             metric.ObserveOption
	hitOpt, staleOpt    metric.ObserveOption
	missOpt             metric.ObserveOption
	registration        metric.Registration

	mu                      sync.Mutex
	items                   map[string]*entry[T]
	root                    entry[T] // root.next is the most recently used, root.prev the least
	bytes                   int64
	hits, staleHits, misses int64
}

// entry is one cached value, a node of the cache's recency list.
type entry[T any] struct {
	key        string
	v          T
	size       int64
	stored     time.Time
	prev, next *entry[T]
}

var _ bulwark.Fallback[int] = (*Cache[int])(nil)

// NewCache validates cfg and returns its Cache. A negative duration or
// bound, a MaxStale shorter than FreshFor, or MaxBytes without Size is an
// error naming the field.
func NewCache[T any](cfg CacheConfig[T]) (*Cache[T], error) {
	switch {
	case cfg.FreshFor < 0:
		return nil, fmt.Errorf("fallback: CacheConfig.FreshFor is %v, want >= 0", cfg.FreshFor)
	case cfg.MaxStale < 0:
		return nil, fmt.Errorf("fallback: CacheConfig.MaxStale is %v, want >= 0", cfg.MaxStale)
	case cfg.MaxStale > 0 && cfg.MaxStale < cfg.FreshFor:
		return nil, fmt.Errorf("fallback: CacheConfig.MaxStale (%v) is shorter than CacheConfig.FreshFor (%v)", cfg.MaxStale, cfg.FreshFor)
	case cfg.MaxEntries < 0:
		return nil, fmt.Errorf("fallback: CacheConfig.MaxEntries is %d, want >= 0", cfg.MaxEntries)
	case cfg.MaxBytes < 0:
		return nil, fmt.Errorf("fallback: CacheConfig.MaxBytes is %d, want >= 0", cfg.MaxBytes)
	case cfg.MaxBytes > 0 && cfg.Size == nil:
		return nil, fmt.Errorf("fallback: CacheConfig.MaxBytes is %d but CacheConfig.Size is nil: values cannot be measured", cfg.MaxBytes)
	}
	c := &Cache[T]{
		fresh:      cfg.FreshFor,
		maxStale:   cfg.MaxStale,
		maxEntries: cfg.MaxEntries,
		maxBytes:   cfg.MaxBytes,
		size:       cfg.Size,
		when:       cfg.When,
		items:      map[string]*entry[T]{},
	}
	if c.maxStale == 0 {
		c.maxStale = math.MaxInt64 // a FreshFor so long that adding would overflow
		if c.fresh <= math.MaxInt64-defaultStaleWindow {
			c.maxStale = c.fresh + defaultStaleWindow
		}
	}
	if c.maxEntries == 0 {
		c.maxEntries = defaultMaxEntries
	}
	c.root.next, c.root.prev = &c.root, &c.root
	if err := c.instruments(meterOf(cfg.MeterProvider), cfg.Name); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cache[T]) instruments(m metric.Meter, name string) error {
	var err error
	if c.used, err = newUsed(m, name, SourceCacheStale); err != nil {
		return err
	}
	wrap := func(e error) error { return fmt.Errorf("fallback: creating instruments: %w", e) }
	if c.entries, err = m.Int64ObservableGauge("bulwark.fallback.cache.entries",
		metric.WithDescription("Values held by a fallback cache."),
		metric.WithUnit("{entry}")); err != nil {
		return wrap(err)
	}
	if c.bytesGauge, err = m.Int64ObservableGauge("bulwark.fallback.cache.bytes",
		metric.WithDescription("Sum of the sizes of the values held by a fallback cache, as its Size measures them."),
		metric.WithUnit("By")); err != nil {
		return wrap(err)
	}
	if c.lookups, err = m.Int64ObservableCounter("bulwark.fallback.cache.lookups",
		metric.WithDescription("Times a fallback cache was asked for a value: fresh before a call, or any within MaxStale after a failure."),
		metric.WithUnit("{lookup}")); err != nil {
		return wrap(err)
	}
	key := attribute.String(keyAttr, name)
	c.nameOpt = metric.WithAttributeSet(attribute.NewSet(key))
	c.hitOpt = metric.WithAttributeSet(attribute.NewSet(key, attribute.String(resultAttr, "hit")))
	c.staleOpt = metric.WithAttributeSet(attribute.NewSet(key, attribute.String(resultAttr, "stale_hit")))
	c.missOpt = metric.WithAttributeSet(attribute.NewSet(key, attribute.String(resultAttr, "miss")))
	if c.registration, err = m.RegisterCallback(c.observe, c.entries, c.bytesGauge, c.lookups); err != nil {
		return fmt.Errorf("fallback: registering metric callback: %w", err)
	}
	return nil
}

// observe reports the cache's state at collection time, so that neither a
// hit nor a Store makes a metric call.
func (c *Cache[T]) observe(_ context.Context, o metric.Observer) error {
	c.mu.Lock()
	n, b, hits, stale, misses := len(c.items), c.bytes, c.hits, c.staleHits, c.misses
	c.mu.Unlock()
	o.ObserveInt64(c.entries, int64(n), c.nameOpt)
	if c.size != nil {
		o.ObserveInt64(c.bytesGauge, b, c.nameOpt)
	}
	o.ObserveInt64(c.lookups, hits, c.hitOpt)
	o.ObserveInt64(c.lookups, stale, c.staleOpt)
	o.ObserveInt64(c.lookups, misses, c.missOpt)
	return nil
}

// Close unregisters the cache's metric callback: its gauges and lookup
// counter stop being reported. The cache keeps working. Close always
// returns the error of the unregistration, nil in practice.
func (c *Cache[T]) Close() error { return c.registration.Unregister() }

// Lookup returns the value stored for key and true when it was stored less
// than FreshFor ago, counting a hit and filling in ctx's Note (Source
// SourceCacheFresh); otherwise the zero T and false, counting a miss. With
// FreshFor zero it returns false at once and counts nothing. ctx is used
// only for its Note. It allocates nothing.
func (c *Cache[T]) Lookup(ctx context.Context, key string) (T, bool) {
	var zero T
	if c.fresh == 0 {
		return zero, false
	}
	now := time.Now()
	c.mu.Lock()
	e := c.items[key]
	if e == nil {
		c.misses++
		c.mu.Unlock()
		return zero, false
	}
	age := now.Sub(e.stored)
	if age >= c.fresh {
		if age > c.maxStale {
			c.remove(e)
		}
		c.misses++
		c.mu.Unlock()
		return zero, false
	}
	c.hits++
	c.toFront(e)
	v := e.v
	c.mu.Unlock()
	record(ctx, Note{Source: SourceCacheFresh, Age: max(age, 0)})
	return v, true
}

// Store keeps v as the last good result for key, stored now, as the most
// recently used value, evicting the least recently used ones beyond
// MaxEntries and MaxBytes. A value that cannot be cached (larger than
// MaxBytes, or sized negative) is not, and the value it supersedes for key
// is dropped too: it is no longer the last good result. Replacing a key's
// value allocates nothing.
func (c *Cache[T]) Store(_ context.Context, key string, v T) {
	var size int64
	if c.size != nil {
		size = int64(c.size(v)) // user code: outside the lock
	}
	keep := size >= 0 && (c.maxBytes == 0 || size <= c.maxBytes)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.items[key]
	switch {
	case !keep:
		if e != nil {
			c.remove(e)
		}
		return
	case e != nil:
		c.bytes += size - e.size
		e.v, e.size, e.stored = v, size, now
		c.toFront(e)
	case len(c.items) >= c.maxEntries:
		// Full: the least recently used entry makes room, and its node is
		// reused for key, so that a full cache turning over allocates
		// only what the map does.
		e = c.root.prev
		c.remove(e)
		*e = entry[T]{key: key, v: v, size: size, stored: now}
		c.add(e)
	default:
		c.add(&entry[T]{key: key, v: v, size: size, stored: now})
	}
	for c.maxBytes > 0 && c.bytes > c.maxBytes {
		// Never e itself: e alone fits in MaxBytes.
		c.remove(c.root.prev)
	}
}

// Recover answers a failed call with the value stored for key when err is
// one to fall back on (see CacheConfig.When) and the value is at most
// MaxStale old, fresh or not: it counts a stale_hit and a
// bulwark.fallback.used, fills in ctx's Note (Source SourceCacheStale, Err
// and Age) and returns the value with a nil error. Otherwise it returns v
// and err unchanged, counting a miss when the cache was asked.
func (c *Cache[T]) Recover(ctx context.Context, key string, v T, err error) (T, error) {
	if !should(ctx, err, c.when) {
		return v, err
	}
	now := time.Now()
	c.mu.Lock()
	e := c.items[key]
	if e == nil {
		c.misses++
		c.mu.Unlock()
		return v, err
	}
	age := now.Sub(e.stored)
	if age > c.maxStale {
		c.remove(e)
		c.misses++
		c.mu.Unlock()
		return v, err
	}
	c.staleHits++
	c.toFront(e)
	w := e.v
	c.mu.Unlock()
	c.used.add(ctx)
	record(ctx, Note{Source: SourceCacheStale, Err: err, Age: max(age, 0)})
	return w, nil
}

// Delete drops the value stored for key, if any: after a write that makes
// it wrong, for example.
func (c *Cache[T]) Delete(key string) {
	c.mu.Lock()
	if e := c.items[key]; e != nil {
		c.remove(e)
	}
	c.mu.Unlock()
}

// Len returns the number of values held, stale ones included.
func (c *Cache[T]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// Bytes returns the sum of the sizes of the values held, as Size measures
// them; zero without Size.
func (c *Cache[T]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// add puts e in the map and at the front of the list. c.mu must be held.
func (c *Cache[T]) add(e *entry[T]) {
	c.items[e.key] = e
	c.bytes += e.size
	e.prev, e.next = &c.root, c.root.next
	e.prev.next, e.next.prev = e, e
}

// remove takes e out of the map and the list, and lets go of its value.
// c.mu must be held.
func (c *Cache[T]) remove(e *entry[T]) {
	delete(c.items, e.key)
	c.bytes -= e.size
	e.prev.next, e.next.prev = e.next, e.prev
	*e = entry[T]{}
}

// toFront makes e the most recently used. c.mu must be held.
func (c *Cache[T]) toFront(e *entry[T]) {
	if c.root.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &c.root, c.root.next
	e.prev.next, e.next.prev = e, e
}
