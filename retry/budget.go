package retry

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const (
	defaultRatio     = 0.2
	defaultPerSecond = 10
	defaultWindow    = 10 * time.Second
	minWindow        = time.Millisecond

	// budgetBuckets is how many buckets a window slides by.
	budgetBuckets = 10
)

// BudgetConfig configures a Budget. The zero BudgetConfig is valid: 20 %
// of requests plus 10 per second, over 10 seconds: enough to ride out a
// blip, never enough to more than slightly raise the load on a dependency
// that is failing for good.
type BudgetConfig struct {
	// Ratio is how many extra attempts (retries, hedges) each request
	// earns. Zero means 0.2; it must be within [0, 1]. Zero cannot mean
	// "none": to let only the PerSecond floor through, give a tiny ratio
	// such as 1e-9.
	Ratio float64
	// PerSecond is the floor: extra attempts allowed per second whatever
	// the traffic, so that a client with few requests can still retry.
	// Zero means 10; it must be >= 0. To allow only what Ratio earns, give
	// a tiny value such as 1e-9.
	PerSecond float64
	// Window is how far back requests and extra attempts are counted; it
	// slides by tenths. Zero means 10s; otherwise it must be >= 1ms.
	Window time.Duration
	// Name is the bulwark.key attribute of the Budget's metrics. Zero
	// means "".
	Name string
	// MeterProvider receives the metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// Budget bounds the extra attempts (retries, hedges) of many calls: over
// a sliding window, at most PerSecond·Window + Ratio·(requests in the
// window) extra attempts are allowed. It keeps a failing dependency from
// receiving a multiple of its normal traffic just when it can least take
// it.
//
// A Budget is safe for concurrent use and meant to be shared: by every
// call of a client, by several clients (HTTP and gRPC alike), by retries
// and hedges. Request and Withdraw take no lock and allocate nothing. A
// nil *Budget is unlimited: Request does nothing and Withdraw always
// succeeds. Build one with NewBudget; the zero Budget is not usable.
//
// The metric bulwark.retry.budget.exhausted counts refused withdrawals; it
// lives as long as the MeterProvider.
type Budget struct {
	start time.Time // the epoch of the buckets, read on the monotonic clock
	width time.Duration
	floor float64 // PerSecond·Window
	ratio float64

	// Each word packs a bucket's sequence number (high 32 bits) with its
	// count (low 32 bits), so that taking over a stale bucket and counting
	// in it is one compare-and-swap: no count is lost at a bucket change.
	requests    [budgetBuckets]atomic.Uint64
	_           [64]byte // withdrawals on cache lines of their own: every call requests, few withdraw
	withdrawals [budgetBuckets]atomic.Uint64

	exhausted metric.Int64Counter
	opts      []metric.AddOption
}

// NewBudget validates cfg and returns its Budget. A Ratio outside [0, 1],
// a negative PerSecond, a Window below 1ms (other than zero) or a value that
// is not a finite number is an error naming the field.
func NewBudget(cfg BudgetConfig) (*Budget, error) {
	switch {
	case math.IsNaN(cfg.Ratio) || cfg.Ratio < 0 || cfg.Ratio > 1:
		return nil, fmt.Errorf("retry: BudgetConfig.Ratio is %v, want within [0, 1]", cfg.Ratio)
	case math.IsNaN(cfg.PerSecond) || math.IsInf(cfg.PerSecond, 0) || cfg.PerSecond < 0:
		return nil, fmt.Errorf("retry: BudgetConfig.PerSecond is %v, want a finite number >= 0", cfg.PerSecond)
	case cfg.Window < 0 || cfg.Window > 0 && cfg.Window < minWindow:
		return nil, fmt.Errorf("retry: BudgetConfig.Window is %v, want 0 or >= %v", cfg.Window, minWindow)
	}
	if cfg.Ratio == 0 {
		cfg.Ratio = defaultRatio
	}
	if cfg.PerSecond == 0 {
		cfg.PerSecond = defaultPerSecond
	}
	if cfg.Window == 0 {
		cfg.Window = defaultWindow
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	exhausted, err := mp.Meter(scope).Int64Counter("bulwark.retry.budget.exhausted",
		metric.WithDescription("Extra attempts (retries, hedges) a retry budget refused."),
		metric.WithUnit("{attempt}"))
	if err != nil {
		return nil, fmt.Errorf("retry: creating instruments: %w", err)
	}
	return &Budget{
		start:     time.Now(),
		width:     cfg.Window / budgetBuckets,
		floor:     cfg.PerSecond * cfg.Window.Seconds(),
		ratio:     cfg.Ratio,
		exhausted: exhausted,
		opts:      []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(keyAttr, cfg.Name)))},
	}, nil
}

// Request records one logical call. Call it once per call, whether or not
// the call is ever retried, from the outermost wrapper that draws on the
// Budget: each call earns Ratio extra attempts for the window.
func (b *Budget) Request() {
	if b == nil {
		return
	}
	b.requestAt(b.elapsed())
}

// requestAt is Request at e, a reading of elapsed.
func (b *Budget) requestAt(e time.Duration) {
	seq := b.seqAt(e)
	add(&b.requests[seq%budgetBuckets], seq)
}

// Withdraw asks for one extra attempt and reports whether the budget
// allows it; the allowance is spent when it does. A refusal is counted in
// bulwark.retry.budget.exhausted. Under concurrent use no more withdrawals
// succeed than the window allows.
func (b *Budget) Withdraw() bool {
	if b == nil {
		return true
	}
	seq := b.seqAt(b.elapsed())
	i := int(seq % budgetBuckets)
	w := &b.withdrawals[i]
	for {
		// The withdrawals first, then the requests: every call counts its
		// request before its withdrawal, so requests read after cover the
		// withdrawals read before. (A snapshot of requests taken before a
		// wait would fall behind withdrawals that other calls made in it,
		// and refuse what the budget allows.)
		old := w.Load()
		var requests, others uint64
		for j := range budgetBuckets {
			if j != i {
				others += count(b.withdrawals[j].Load(), seq)
			}
		}
		for j := range budgetBuckets {
			requests += count(b.requests[j].Load(), seq)
		}
		// The tolerance absorbs rounding in the product (0.2·15 is not 3
		// in binary), never a whole attempt.
		allowed := b.floor + b.ratio*float64(requests) + 1e-9
		next, ok := bump(old, seq)
		if !ok || float64(others+uint64(uint32(next))) > allowed {
			b.exhausted.Add(context.Background(), 1, b.opts...)
			return false
		}
		if w.CompareAndSwap(old, next) {
			return true
		}
	}
}

// elapsed reads the Budget's clock: the monotonic time since NewBudget.
func (b *Budget) elapsed() time.Duration { return time.Since(b.start) }

// seqAt returns the sequence number of the bucket of e, a reading of
// elapsed. Only its low 32 bits are kept: a bucket left untouched for
// exactly 2³² bucket widths (136 years with the default window, 5 days
// with the smallest) would be taken for a current one.
func (b *Budget) seqAt(e time.Duration) uint32 {
	return uint32(e / b.width)
}

// add counts one event in the bucket word w for sequence seq.
func add(w *atomic.Uint64, seq uint32) {
	for {
		old := w.Load()
		next, ok := bump(old, seq)
		if !ok || w.CompareAndSwap(old, next) {
			return
		}
	}
}

// bump returns the bucket word old with one more event for sequence seq:
// a stale bucket restarts at 1. A bucket already taken over by a later
// sequence (the caller was descheduled for a whole window) keeps its
// sequence and counts the event: it is recent. ok is false when the count
// is saturated.
func bump(old uint64, seq uint32) (next uint64, ok bool) {
	s, c := uint32(old>>32), uint32(old)
	if s != seq && int32(s-seq) < 0 {
		return uint64(seq)<<32 | 1, true
	}
	if c == math.MaxUint32 {
		return old, false
	}
	return old + 1, true
}

// count returns the count of bucket word v when its sequence lies within
// the window ending at seq, else 0.
func count(v uint64, seq uint32) uint64 {
	if seq-uint32(v>>32) < budgetBuckets {
		return uint64(uint32(v))
	}
	return 0
}
