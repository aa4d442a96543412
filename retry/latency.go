package retry

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultLatencyWindow = 1000
	defaultMinSamples    = 100

	// The histogram is log-linear: values below 2^subBits ns have a bucket
	// each; above, every power of two is split into 2^subBits buckets of
	// equal width, so a bucket is at most 1/32 of its values wide and its
	// midpoint is within 1.6 % of any of them.
	subBits  = 5
	subCount = 1 << subBits
	// maxExp is the largest power of two tracked: longer durations (over
	// 36 minutes) are counted in the last bucket.
	maxExp   = 40
	octaves  = maxExp - subBits + 2
	nBuckets = octaves * subCount
)

// LatencyConfig configures a Latency. The zero LatencyConfig is valid: it
// answers from the last 1000 to 2000 observations, once it has 100.
type LatencyConfig struct {
	// Window is how many observations make a generation. The tracker
	// answers from the current generation and the previous one, so from
	// the last Window to 2·Window observations: it forgets by count, not
	// by time, which keeps Observe free of clock reads. Zero means 1000.
	Window int
	// MinSamples is how many observations Quantile needs before it
	// answers: a p99 of ten samples is noise. Zero means 100; it must not
	// exceed Window.
	MinSamples int
}

// Latency tracks recent attempt latencies and answers quantiles of them,
// within 2 %, for deadline-aware retries and for hedging delays. It holds
// two generations of a log-linear histogram of atomic counters: Observe
// counts into the current one, and once it holds Window observations it
// becomes the previous one and the older one is cleared to start again.
//
// A Latency is safe for concurrent use and may be shared by the wrappers
// of a call (a Retry and a Hedge). Observe takes no lock and allocates
// nothing (the Window-th one takes a mutex to rotate the generations);
// Quantile takes no lock. Build it with NewLatency.
//
// It has no metrics of its own: the latencies it sees are those the
// transport instrumentation already reports (rpc.client.call.duration,
// http.client.request.duration).
type Latency struct {
	window     int64
	minSamples uint64

	view  atomic.Pointer[genView]
	views [2]genView
	gens  [2]generation

	rotating  sync.Mutex    // serializes rotations; never taken by Quantile
	rotations atomic.Uint64 // odd while a rotation clears a generation
}

// genView names the current generation and the previous one. Swapping one
// pointer to a view swaps both at once.
type genView struct{ cur, prev *generation }

type generation struct {
	n       atomic.Int64
	octaves [octaves]atomic.Uint64 // per power of two, so Quantile scans few counters
	buckets [nBuckets]atomic.Uint64
}

// NewLatency validates cfg and returns its Latency. A negative field, or a
// MinSamples above Window, is an error naming the field.
func NewLatency(cfg LatencyConfig) (*Latency, error) {
	switch {
	case cfg.Window < 0:
		return nil, fmt.Errorf("retry: LatencyConfig.Window is %d, want >= 0", cfg.Window)
	case cfg.MinSamples < 0:
		return nil, fmt.Errorf("retry: LatencyConfig.MinSamples is %d, want >= 0", cfg.MinSamples)
	}
	if cfg.Window == 0 {
		cfg.Window = defaultLatencyWindow
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = min(defaultMinSamples, cfg.Window)
	}
	if cfg.MinSamples > cfg.Window {
		return nil, fmt.Errorf("retry: LatencyConfig.MinSamples is %d, want <= Window (%d)", cfg.MinSamples, cfg.Window)
	}
	l := &Latency{window: int64(cfg.Window), minSamples: uint64(cfg.MinSamples)}
	l.views[0] = genView{cur: &l.gens[0], prev: &l.gens[1]}
	l.views[1] = genView{cur: &l.gens[1], prev: &l.gens[0]}
	l.view.Store(&l.views[0])
	return l, nil
}

// Observe records the latency of one attempt. A negative d counts as zero.
func (l *Latency) Observe(d time.Duration) {
	o, i := bucketOf(d)
	v := l.view.Load()
	g := v.cur
	g.buckets[i].Add(1)
	g.octaves[o].Add(1)
	if g.n.Add(1) == l.window {
		l.rotate(v)
	}
}

// rotate makes v's current generation the previous one and a cleared one
// current. Observations that race with it land in either generation, which
// are both recent: none is lost or misplaced in time by more than a
// generation.
func (l *Latency) rotate(v *genView) {
	l.rotating.Lock()
	defer l.rotating.Unlock()
	if l.view.Load() != v {
		return
	}
	next := &l.views[0]
	if v == next {
		next = &l.views[1]
	}
	g := next.cur // v.prev
	l.rotations.Add(1)
	defer l.rotations.Add(1)
	for i := range g.buckets {
		g.buckets[i].Store(0)
	}
	for i := range g.octaves {
		g.octaves[i].Store(0)
	}
	g.n.Store(0)
	l.view.Store(next)
}

// Quantile returns the q-quantile (q within [0, 1]: 0.5 is the median, 1
// the largest) of the recent observations, and true; or 0 and false while
// there are fewer than MinSamples of them, or when q is out of range.
func (l *Latency) Quantile(q float64) (time.Duration, bool) {
	if !(q >= 0 && q <= 1) { // NaN too
		return 0, false
	}
	// A rotation clears the generation being read: read again, a few
	// times, rather than answer from half a histogram.
	for range 3 {
		before := l.rotations.Load()
		d, ok, consistent := l.quantile(q)
		if consistent && before&1 == 0 && l.rotations.Load() == before {
			return d, ok
		}
	}
	d, ok, _ := l.quantile(q)
	return d, ok
}

// quantile reads the histogram once; consistent is false when the octave
// counts and the bucket counts disagree (a rotation cleared part of them).
func (l *Latency) quantile(q float64) (d time.Duration, ok, consistent bool) {
	v := l.view.Load()
	var per [octaves]uint64
	var total uint64
	for o := range per {
		per[o] = v.cur.octaves[o].Load() + v.prev.octaves[o].Load()
		total += per[o]
	}
	if total < l.minSamples || total == 0 {
		return 0, false, true
	}
	// The rank-th smallest observation, counting from 1.
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	for o, n := range per {
		if rank > n {
			rank -= n
			continue
		}
		last := subCount / 2
		for s := range subCount {
			i := o*subCount + s
			n := v.cur.buckets[i].Load() + v.prev.buckets[i].Load()
			if rank <= n {
				return midpoint(o, s), true, true
			}
			if n > 0 {
				last = s
			}
			rank -= n
		}
		// Observe counts the bucket before the octave, so the buckets
		// fall short only when a rotation cleared some of them.
		return midpoint(o, last), true, false
	}
	return 0, false, false // unreachable: rank <= total, the sum of per
}

// bucketOf returns the octave and the bucket index of d.
func bucketOf(d time.Duration) (octave, index int) {
	x := uint64(max(d, 0))
	if x < subCount {
		return 0, int(x)
	}
	e := bits.Len64(x) - 1
	if e > maxExp {
		return octaves - 1, nBuckets - 1
	}
	octave = e - subBits + 1
	sub := int(x>>(e-subBits)) & (subCount - 1)
	return octave, octave*subCount + sub
}

// midpoint returns the middle of bucket s of octave o.
func midpoint(o, s int) time.Duration {
	if o == 0 {
		return time.Duration(s)
	}
	width := uint64(1) << (o - 1)
	return time.Duration((subCount+uint64(s))*width + width/2)
}
