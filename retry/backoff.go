package retry

import (
	"fmt"
	"math/rand/v2"
	"time"
)

const (
	// DefaultBase is the base delay of Exponential and Decorrelated when
	// theirs is zero: short enough that two retries fit in an interactive
	// call's total deadline (the mean waits of full jitter are 25ms, then
	// 50ms), long enough to step past a connection reset or a leader
	// election. Load protection comes from the Budget, not from the wait.
	DefaultBase = 50 * time.Millisecond
	// DefaultCap is the longest wait Exponential and Decorrelated return
	// when their Cap is zero: a client still waiting after 5s is usually
	// better off failing, and the deadline check refuses longer waits
	// anyway.
	DefaultCap = 5 * time.Second
)

// A Backoff chooses how long to wait before a retry. A Backoff must be safe
// for concurrent use.
type Backoff interface {
	// Delay returns the wait after attempt n failed (n counts from 0, as
	// bulwark.Call.Attempt numbers attempts) and before attempt n+1. prev
	// is the wait Delay returned before attempt n, zero after the first
	// attempt. A negative result is taken as zero.
	Delay(n int, prev time.Duration) time.Duration
}

// BackoffFunc adapts a function to a Backoff, so that an existing policy
// plugs in with one line. For example, a go-retryablehttp Backoff, whose
// attempt number also counts from 0:
//
//	retry.BackoffFunc(func(n int, _ time.Duration) time.Duration {
//		return retryablehttp.LinearJitterBackoff(min, max, n, nil)
//	})
type BackoffFunc func(n int, prev time.Duration) time.Duration

// Delay returns f(n, prev).
func (f BackoffFunc) Delay(n int, prev time.Duration) time.Duration { return f(n, prev) }

// Exponential is exponential backoff with full jitter: after attempt n it
// waits a uniformly random duration in [0, min(Cap, Base·2ⁿ)]. Spreading
// each wait over the whole range, rather than around its middle, is what
// keeps clients that failed together from retrying together. The zero
// Exponential is valid. It is safe for concurrent use when Rand is.
type Exponential struct {
	// Base is the upper bound of the first wait. Zero means DefaultBase.
	Base time.Duration
	// Cap bounds every wait. Zero means DefaultCap; it must not be below
	// Base.
	Cap time.Duration
	// Rand returns a uniformly random int64 in [0, n) for n > 0. It must
	// be safe for concurrent use. Nil means math/rand/v2's Int64N; tests
	// give a deterministic one.
	Rand func(n int64) int64
}

// Delay returns the wait after attempt n failed.
func (e Exponential) Delay(n int, _ time.Duration) time.Duration {
	base, ceil := orDefault(e.Base, DefaultBase), orDefault(e.Cap, DefaultCap)
	if base <= 0 || ceil <= 0 {
		return 0
	}
	upper := ceil
	// base<<n overflows, and exceeds any cap, well before n reaches 63.
	if n < 62 && base <= ceil>>max(n, 0) {
		upper = base << max(n, 0)
	}
	return uniform(e.Rand, 0, upper)
}

func (e Exponential) validate() error { return checkBaseCap(e.Base, e.Cap) }

// Decorrelated is decorrelated-jitter backoff: each wait is uniformly random
// in [Base, 3·prev], capped by Cap, with prev = Base before the first retry.
// The waits grow about as fast as exponential backoff's, but each follows
// from the last one rather than from the attempt number, which spreads
// clients further apart. The zero Decorrelated is valid. It is safe for
// concurrent use when Rand is.
type Decorrelated struct {
	// Base is the shortest wait. Zero means DefaultBase.
	Base time.Duration
	// Cap bounds every wait. Zero means DefaultCap; it must not be below
	// Base.
	Cap time.Duration
	// Rand returns a uniformly random int64 in [0, n) for n > 0. It must
	// be safe for concurrent use. Nil means math/rand/v2's Int64N.
	Rand func(n int64) int64
}

// Delay returns the wait after attempt n failed, following prev.
func (d Decorrelated) Delay(_ int, prev time.Duration) time.Duration {
	base, ceil := orDefault(d.Base, DefaultBase), orDefault(d.Cap, DefaultCap)
	if base <= 0 || ceil <= 0 {
		return 0
	}
	prev = max(prev, base)
	upper := ceil
	if prev <= ceil/3 {
		upper = 3 * prev
	}
	return min(uniform(d.Rand, base, max(upper, base)), ceil)
}

func (d Decorrelated) validate() error { return checkBaseCap(d.Base, d.Cap) }

// Constant waits the same duration before every retry; zero retries at
// once.
type Constant time.Duration

// Delay returns c.
func (c Constant) Delay(int, time.Duration) time.Duration { return max(time.Duration(c), 0) }

func (c Constant) validate() error {
	if c < 0 {
		return fmt.Errorf("retry: Config.Backoff is Constant(%v), want >= 0", time.Duration(c))
	}
	return nil
}

// uniform returns a random duration in [lo, hi].
func uniform(rnd func(int64) int64, lo, hi time.Duration) time.Duration {
	span := int64(hi - lo)
	if span <= 0 {
		return lo
	}
	if span == 1<<63-1 {
		span-- // span+1 must not overflow
	}
	if rnd == nil {
		rnd = rand.Int64N
	}
	r := rnd(span + 1)
	if r < 0 || r > span { // a broken Rand must not push a wait out of range
		r = span
	}
	return lo + time.Duration(r)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func checkBaseCap(base, ceil time.Duration) error {
	switch {
	case base < 0:
		return fmt.Errorf("retry: Config.Backoff.Base is %v, want >= 0", base)
	case ceil < 0:
		return fmt.Errorf("retry: Config.Backoff.Cap is %v, want >= 0", ceil)
	}
	if b, c := orDefault(base, DefaultBase), orDefault(ceil, DefaultCap); c < b {
		return fmt.Errorf("retry: Config.Backoff.Cap is %v (zero means %v), want >= Config.Backoff.Base (%v)", ceil, DefaultCap, b)
	}
	return nil
}
