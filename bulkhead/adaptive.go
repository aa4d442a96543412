package bulkhead

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark"
)

// Latencies are summed in units of 16ns, so that a window's count of
// successes and the sum of their latencies share one word and are read and
// reset together, with no lock on the attempts' path.
const (
	unitShift  = 4                          // a latency unit is 1<<unitShift ns
	countShift = 48                         // successes: count<<countShift | sum of latencies
	sumMask    = 1<<countShift - 1          //
	maxLatency = 1<<32 - 1                  // units (~69s); a longer latency counts as this
	forceClose = 1 << 15                    // successes that close a window whatever its age, long before the count overflows
	minRef     = float64(1000 >> unitShift) // 1µs: a no-load latency below it is noise, not a reference
	cutGain    = 1.25                       // a lower limit that lowers the latency less than this did not help: a cut for latency, a probe's halving
	sinceEver  = math.MinInt64 / 2          // a time long before any other, that subtracts without overflow
)

// adaptive is the learning half of an adaptive limiter. The limiter's
// semaphore holds Config.Limit slots, of which Config.Limit minus the
// limit in force are held back; the limit grows by giving held slots back
// and shrinks by taking free ones, or, while they are in use, by keeping
// them when their attempts end (debt).
//
// Besides the semaphore, attempts touch only atomics. The one lock is
// taken at the end of a window, by the attempt that ends it, with TryLock:
// an attempt never waits for it.
type adaptive struct {
	// Settings, read only. Times are nanoseconds since epoch, on the
	// monotonic clock.
	epoch              time.Time
	minLimit, maxLimit float64
	tolerance, backoff float64
	window, probeEvery int64
	minSamples         uint64

	// Written by attempts: off the cache line of the settings.
	_        [64]byte
	samples  atomic.Uint64 // the window's successes: count<<countShift | sum of their latencies
	failures atomic.Uint64 // the window's failures
	peak     atomic.Int64  // the most attempts in flight at once during the window
	winStart atomic.Int64  // attempts admitted before it do not count in the window
	winEnd   atomic.Int64  // the window may close from then on
	limit    atomic.Int64  // the limit in force
	debt     atomic.Int64  // slots the limit shrank by while in use: releases keep them

	// mu is held to end a window; it guards the fields below.
	mu            sync.Mutex
	est           float64 // the learned limit; fractional, so that small steps add up
	noLoad        float64 // latency without queueing, in units; 0 until measured
	known         bool    // noLoad was measured where a lower limit could not lower it: by a probe, or at minLimit
	lastMean      float64 // mean latency of the last window's successes, in units; 0 if none
	cutForLat     bool    // the last window cut the limit for latency
	lastProbe     int64   // when the last probe started
	probing       bool    // the limit in force is a probe's, not est
	probeLimit    int64   // the probe's limit
	prevLimit     int64   // the limit in force in the window before the last
	probeRef      float64 // latency of the window before this probe step, in units
	resumeRef     float64 // latency at est, before the probe
	lastFailShare float64 // share of failures among the last window's ended attempts
	trial         bool    // the limit in force is a step up, on trial for one window
	trialBase     float64 // est before the step up
	failedUps     int     // steps up in a row that found no room
	growAfter     int64   // no step up before then
}

func newAdaptive(c AdaptiveConfig, limit int) *adaptive {
	a := &adaptive{
		epoch:      time.Now(),
		minLimit:   float64(c.MinLimit),
		maxLimit:   float64(limit),
		tolerance:  c.Tolerance,
		backoff:    c.Backoff,
		window:     int64(c.Window),
		probeEvery: int64(c.ProbeInterval),
		minSamples: uint64(c.MinSamples),
		est:        float64(c.InitialLimit),
		lastProbe:  sinceEver,
		growAfter:  sinceEver,
		// The first window runs at the initial limit throughout: it is
		// steady, and may start the first probe.
		prevLimit: int64(c.InitialLimit),
	}
	a.limit.Store(int64(c.InitialLimit))
	a.winEnd.Store(a.window)
	return a
}

func (a *adaptive) now() int64 { return int64(time.Since(a.epoch)) }

// admitted records an admission that brought the attempts in flight to n
// and returns its start time, for the Permit.
func (a *adaptive) admitted(n int64) int64 {
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	return a.now()
}

// done records how an attempt admitted at start ended, and reports whether
// the window may now close.
func (a *adaptive) done(o bulwark.Outcome, start int64) (now int64, closeDue bool) {
	if o != bulwark.Success && o != bulwark.Failure {
		return 0, false // Ignored (or unknown) teaches nothing
	}
	if start < a.winStart.Load() {
		return 0, false // admitted under an earlier window's limit
	}
	now = a.now()
	var n, f uint64
	if o == bulwark.Success {
		lat := uint64(max(now-start, 0)) >> unitShift
		n = a.samples.Add(1<<countShift|min(lat, maxLatency)) >> countShift
		if n >= forceClose {
			return now, true
		}
		f = a.failures.Load()
	} else {
		f = a.failures.Add(1)
		n = a.samples.Load() >> countShift
	}
	return now, now >= a.winEnd.Load() && n+f >= a.minSamples
}

// pay settles up to n slots of debt and returns how many it settled.
func (a *adaptive) pay(n int64) int64 {
	for {
		d := a.debt.Load()
		if d <= 0 {
			return 0
		}
		p := min(d, n)
		if a.debt.CompareAndSwap(d, d-p) {
			return p
		}
	}
}

// windowStats is what one window saw.
type windowStats struct {
	successes, failures uint64
	mean                float64 // of the successes' latencies, in units
	reached             bool    // the limit in force was reached
}

// closeWindow ends the current window at now, if it is due, and returns
// the new limit in force. The caller holds a.mu.
func (a *adaptive) closeWindow(now int64, inFlight int64) (limit int64, closed bool) {
	if now < a.winEnd.Load() && a.samples.Load()>>countShift < forceClose {
		return 0, false // another attempt closed it first
	}
	if a.samples.Load()>>countShift+a.failures.Load() < a.minSamples {
		return 0, false // wait for enough samples, however long
	}
	// Start the next window before reading this one: an attempt ending
	// meanwhile was admitted before now, and counts in neither.
	a.winStart.Store(now)
	s := a.samples.Swap(0)
	w := windowStats{successes: s >> countShift, failures: a.failures.Swap(0)}
	if w.successes > 0 {
		w.mean = float64(s&sumMask) / float64(w.successes)
	}
	w.reached = a.peak.Swap(inFlight) >= a.limit.Load()

	limit = a.update(now, w)
	winLen := max(a.window, int64(2*a.lastMean)<<unitShift)
	a.winEnd.Store(now + winLen)
	return limit, true
}

// update learns from window w, which ended at now, and returns the limit
// to put in force. The caller holds a.mu.
func (a *adaptive) update(now int64, w windowStats) int64 {
	// A window run at the same limit as the one before measured a steady
	// state: the queue a change of limit builds or drains takes a while.
	steady := a.limit.Load() == a.prevLimit
	a.prevLimit = a.limit.Load()
	if a.probing {
		return a.probeStep(w)
	}
	trial := a.trial
	a.trial = false
	factor := 1.0
	if w.failures > 0 {
		factor = float64(w.successes) / float64(w.successes+w.failures)
	}
	// Judge latency on enough successes only: in a window of failures,
	// one lucky success would set the no-load latency.
	judge := w.successes > 0 && w.successes*2 >= a.minSamples
	latencyHigh, latencyLow := false, !judge
	if judge {
		if a.noLoad == 0 || w.mean < a.noLoad {
			a.noLoad = w.mean
		}
		ref := max(a.noLoad, minRef)
		// Between half the tolerance and all of it, hold: growing would
		// only build a queue.
		latencyLow = w.mean <= (1+a.tolerance)/2*ref
		if w.mean > a.tolerance*ref {
			// A cut that did not lower the latency, or no room to cut:
			// the latency is the endpoint's own, not our queueing.
			if (a.cutForLat && w.mean*cutGain > a.lastMean) || a.est <= a.minLimit {
				a.noLoad = w.mean
			} else {
				latencyHigh = true
				factor = min(factor, ref/w.mean)
			}
		}
		if float64(a.limit.Load()) <= a.minLimit {
			a.known = true // no lower limit to compare with
		}
		a.lastMean = w.mean
	}
	a.cutForLat = latencyHigh
	// A step up failed when its window saw latency that would not let the
	// limit grow, or a share of failures above the window's before by more
	// than one failure: failures at the rate before are not the step's.
	n := float64(w.successes + w.failures)
	failedUp := trial && (!latencyLow || float64(w.failures) > (a.lastFailShare*n+1))
	if n > 0 {
		a.lastFailShare = float64(w.failures) / n
	}
	if trial && !failedUp {
		a.failedUps = 0 // the step up found room
	}
	probeDue := steady && w.reached && now-a.lastProbe >= a.probeEvery && a.est >= a.minLimit+1 && a.lastMean > 0
	switch {
	case failedUp:
		// The step up found no room: the endpoint queued or failed more
		// at the higher limit, because of the step. Step back, and wait
		// twice as long as the last time before the next step up: against
		// an endpoint at its capacity, steps up are a window's queueing
		// each, and rare.
		a.est = a.trialBase
		a.cutForLat = !latencyLow
		a.failedUps++
		a.growAfter = now + a.upHold()
	case probeDue && (factor == 1 || !a.known && !latencyHigh):
		// The first probe comes before any step up and despite a few
		// failures: the first no-load latency was measured at the initial
		// limit, perhaps already queueing. A probe that meets failures
		// gives up, and the next comes soon.
		a.probing, a.lastProbe = true, now
		a.probeLimit = max(int64(a.minLimit), int64(a.est)/2)
		a.probeRef, a.resumeRef = a.lastMean, a.lastMean
		return a.probeLimit
	case factor < 1:
		a.est *= max(factor, a.backoff)
	case w.reached && latencyLow && a.known && now >= a.growAfter:
		// From the limit in force, not est: a fraction left by a cut
		// must not make a step of more than sqrt(limit).
		l := math.Floor(a.est)
		a.trial, a.trialBase = true, a.est
		a.est = l + math.Sqrt(l)
	}
	a.est = min(max(a.est, a.minLimit), a.maxLimit)
	if a.trial && int64(a.est) == a.prevLimit {
		a.trial = false // at the ceiling: no step at all
	}
	return int64(a.est)
}

// upHold returns how long to wait before the next step up after
// a.failedUps failed ones in a row: Window doubled for each, up to
// ProbeInterval.
func (a *adaptive) upHold() int64 {
	hold := a.window
	for i := 0; i < a.failedUps && hold < a.probeEvery; i++ {
		hold *= 2
	}
	return min(hold, a.probeEvery)
}

// probeStep learns from a window run at a probe's limit: while halving
// lowers the latency, the endpoint was queueing, so halve again; when it
// stops, the latency measured is the no-load latency. Then restore est,
// cut for the latency it had against that no-load latency.
func (a *adaptive) probeStep(w windowStats) int64 {
	if w.failures == 0 && w.successes > 0 {
		if a.probeRef > w.mean*cutGain && float64(a.probeLimit) > a.minLimit {
			a.probeRef = w.mean
			a.probeLimit = max(int64(a.minLimit), a.probeLimit/2)
			return a.probeLimit
		}
		a.noLoad, a.known = w.mean, true
		ref := max(a.noLoad, minRef)
		// Unlike a window's, this cut is not bounded by Backoff: the probe
		// measured, over several windows, how much of the latency at est
		// was queueing.
		a.cutForLat = a.resumeRef > a.tolerance*ref
		if a.cutForLat {
			a.est *= ref / a.resumeRef
		}
		a.lastMean = a.resumeRef // the next window compares its latency with est's before the probe
	} else if w.failures > 0 {
		// Failures even at the probe's limit: give up the probe, cut.
		a.est *= max(float64(w.successes)/float64(w.successes+w.failures), a.backoff)
		a.cutForLat = false
		if !a.known {
			a.lastProbe = sinceEver // no step up before a probe: try again soon
		}
	}
	a.probing = false
	a.est = min(max(a.est, a.minLimit), a.maxLimit)
	return int64(a.est)
}
