package bulkhead

import (
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/metric"
)

const (
	defaultLimit   = 64
	defaultMaxKeys = 1024

	defaultInitialLimit  = 16
	defaultTolerance     = 1.5
	defaultBackoff       = 0.5
	defaultWindow        = 100 * time.Millisecond
	defaultMinSamples    = 8
	defaultProbeInterval = 10 * time.Second
	maxMinSamples        = 4096 // far below what a window's sample counter holds
)

// Config configures a Bulkhead or a Set; one Config can build either, and
// each ignores the field that belongs only to the other. The zero Config is
// valid: 64 attempts at a time, no queue, 1024 keys.
type Config struct {
	// Name is the key a Bulkhead reports in its FullErrors and in the
	// bulwark.key attribute of its metrics, which keeps several Bulkheads
	// on one MeterProvider apart. A Set ignores it: each of its limits is
	// named by its own key. Zero means "".
	Name string
	// Limit is how many attempts may run at once (per key, in a Set).
	// With Adaptive, it is the ceiling the learned limit never exceeds.
	// Zero means 64.
	Limit int
	// MaxQueue is how many attempts may wait for a slot while every slot
	// is busy (per key, in a Set); one more is rejected at once. Waiters
	// are admitted first come, first served, and an attempt that arrives
	// while others wait joins the queue behind them. Zero means no queue:
	// an attempt that finds every slot busy is rejected at once.
	//
	// With Adaptive the queue works the same against the learned limit:
	// waiters get the slots that attempts free and that the limit gains.
	MaxQueue int
	// MaxWait is how long a queued attempt may wait for a slot before it
	// is rejected; the caller's context bounds the wait as well. Zero
	// means only the caller's context bounds it. Setting it requires
	// MaxQueue > 0: without a queue nothing ever waits, so a MaxWait
	// there would be a setting that silently never applies.
	MaxWait time.Duration
	// MaxKeys is how many keys a Set holds; beyond it, a key not used
	// lately is evicted. A Bulkhead ignores it. Zero means 1024.
	MaxKeys int
	// Adaptive, when not nil, makes the limit learn how many attempts the
	// endpoint serves at once without queueing, between Adaptive.MinLimit
	// and Limit; in a Set each key learns its own. Nil means a fixed
	// limit of Limit attempts.
	Adaptive *AdaptiveConfig
	// MeterProvider receives the metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// AdaptiveConfig configures an adaptive limit (see Config.Adaptive). The
// zero AdaptiveConfig is valid: between 1 and Config.Limit attempts at
// once, starting at 16, updated at most every 100ms.
//
// The limit learns from the attempts that end in bulwark.Success or
// bulwark.Failure; Ignored attempts (the caller cancelled, a local
// rejection) teach it nothing. Time is divided into windows, each at
// least Window long and holding at least MinSamples ended attempts that
// were admitted during the window itself: attempts admitted under an
// earlier limit, and long-lived streams, do not count. At the end of a
// window, with L the limit and the no-load latency the lowest mean
// success latency seen (refreshed by probes):
//
//   - a mean success latency above Tolerance times the no-load latency
//     means the endpoint queues: L is cut to L × no-load / mean, the
//     share that would have run without queueing;
//   - a share f of failures cuts L to (1-f) × L;
//   - no window cuts L below Backoff × L (a probe's restore aside), so
//     that a burst of failures or one slow window cannot collapse it;
//   - a window with neither steps L up by sqrt(L) (1 to 2, 4 to 6, 16 to
//     20), but only if L was reached during the window (an idle or
//     lightly used limit does not grow), the mean latency was at most
//     (1+Tolerance)/2 times the no-load latency (above that and up to
//     Tolerance, L holds: growing would only build a queue), and a probe
//     has measured the no-load latency (or L is MinLimit): the first
//     windows, at InitialLimit, may be queueing already;
//   - a step up is on trial for the next window: when that window's mean
//     latency is above (1+Tolerance)/2 times the no-load latency, or its
//     failures exceed the rate of the window before by more than one, the
//     step found no room and L steps back. The next step up then waits
//     2 × Window, and twice as long after each step back in a row, up to
//     ProbeInterval; a step that holds ends the wait. Against an endpoint
//     at its capacity, a step up queues attempts for one window, and
//     rarely;
//   - a cut that did not lower the latency, or a queueing latency at
//     MinLimit, says the latency is the endpoint's own, not queueing this
//     limit caused: it becomes the no-load latency instead of cutting L;
//   - when L was reached in a window that ran at the same L as the one
//     before (the first window counts), at most every ProbeInterval, L is
//     halved for a window, and halved again while that lowers the latency
//     by more than a fifth, to measure the no-load latency afresh; then
//     L is restored, cut by what the probe showed was queueing. The first
//     probe comes as soon as L is reached, before any step up, even with
//     a few failures. Without probes a no-load latency first measured
//     under overload would hold L too high.
//
// Against an endpoint that serves C attempts at once and queues the rest,
// under more load than it serves, L settles between about C and
// (1+Tolerance)/2 × C: at 1 for C = 1, stepping up to 2 for a window ever
// more rarely; under a lighter load, where a higher L queues less, up to
// Tolerance × C.
type AdaptiveConfig struct {
	// MinLimit is the floor the limit never drops below. Zero means 1.
	// It must not exceed Config.Limit.
	MinLimit int
	// InitialLimit is the limit before anything is learned, and a Set's
	// limit for each new key. Zero means 16, or MinLimit if higher, or
	// Config.Limit if lower; set, it must lie between the two.
	InitialLimit int
	// Tolerance is how many times slower than the no-load latency a
	// window's mean success latency may be before the window counts as
	// queueing. Zero means 1.5; otherwise it must be above 1. Lower reacts
	// to smaller queues and mistakes more noise for queueing.
	Tolerance float64
	// Backoff is the smallest factor one window may multiply the limit
	// by. Zero means 0.5; otherwise it must be above 0 and below 1.
	Backoff float64
	// Window is the shortest time between two updates of the limit; a
	// window also lasts at least twice the last window's mean latency.
	// Zero means 100ms.
	Window time.Duration
	// MinSamples is how many ended attempts admitted during a window it
	// needs before it may close; a window waits for them, so an idle limit
	// never changes. Zero means 8; at most 4096.
	MinSamples int
	// ProbeInterval is how often the no-load latency is re-measured by
	// halving the limit for a window, when the limit is being reached,
	// and the longest wait between a step up that found no room and the
	// next. The first probe comes as soon as the limit is reached in a
	// window at an unchanged limit. Zero means 10s.
	ProbeInterval time.Duration
}

// normalize validates c and returns it with its defaults filled in. The
// AdaptiveConfig is copied, so that the caller's later changes to it do
// not reach a limit already built.
func (c Config) normalize() (Config, error) {
	switch {
	case c.Limit < 0:
		return c, fmt.Errorf("bulkhead: Config.Limit is %d, want >= 0", c.Limit)
	case c.MaxQueue < 0:
		return c, fmt.Errorf("bulkhead: Config.MaxQueue is %d, want >= 0", c.MaxQueue)
	case c.MaxWait < 0:
		return c, fmt.Errorf("bulkhead: Config.MaxWait is %v, want >= 0", c.MaxWait)
	case c.MaxKeys < 0:
		return c, fmt.Errorf("bulkhead: Config.MaxKeys is %d, want >= 0", c.MaxKeys)
	case c.MaxWait > 0 && c.MaxQueue == 0:
		return c, fmt.Errorf("bulkhead: Config.MaxWait is %v but Config.MaxQueue is 0, want MaxQueue > 0 (without a queue nothing waits)", c.MaxWait)
	}
	if c.Limit == 0 {
		c.Limit = defaultLimit
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = defaultMaxKeys
	}
	if c.Adaptive != nil {
		a, err := c.Adaptive.normalize(c.Limit)
		if err != nil {
			return c, err
		}
		c.Adaptive = &a
	}
	return c, nil
}

// normalize validates a against the ceiling limit and returns it with its
// defaults filled in.
func (a AdaptiveConfig) normalize(limit int) (AdaptiveConfig, error) {
	const p = "bulkhead: Config.Adaptive."
	switch {
	case a.MinLimit < 0:
		return a, fmt.Errorf(p+"MinLimit is %d, want >= 0", a.MinLimit)
	case a.MinLimit > limit:
		return a, fmt.Errorf(p+"MinLimit is %d, above Config.Limit (%d, the ceiling)", a.MinLimit, limit)
	case a.InitialLimit < 0:
		return a, fmt.Errorf(p+"InitialLimit is %d, want >= 0", a.InitialLimit)
	case a.InitialLimit > limit:
		return a, fmt.Errorf(p+"InitialLimit is %d, above Config.Limit (%d, the ceiling)", a.InitialLimit, limit)
	case a.InitialLimit != 0 && a.InitialLimit < max(a.MinLimit, 1):
		return a, fmt.Errorf(p+"InitialLimit is %d, below MinLimit (%d)", a.InitialLimit, max(a.MinLimit, 1))
	case math.IsNaN(a.Tolerance) || math.IsInf(a.Tolerance, 0) || a.Tolerance < 0 || (a.Tolerance != 0 && a.Tolerance <= 1):
		return a, fmt.Errorf(p+"Tolerance is %v, want 0 (the default) or a finite number above 1", a.Tolerance)
	case math.IsNaN(a.Backoff) || a.Backoff < 0 || a.Backoff >= 1:
		return a, fmt.Errorf(p+"Backoff is %v, want 0 (the default) or above 0 and below 1", a.Backoff)
	case a.Window < 0:
		return a, fmt.Errorf(p+"Window is %v, want >= 0", a.Window)
	case a.MinSamples < 0 || a.MinSamples > maxMinSamples:
		return a, fmt.Errorf(p+"MinSamples is %d, want 0 to %d", a.MinSamples, maxMinSamples)
	case a.ProbeInterval < 0:
		return a, fmt.Errorf(p+"ProbeInterval is %v, want >= 0", a.ProbeInterval)
	}
	if a.MinLimit == 0 {
		a.MinLimit = 1
	}
	if a.InitialLimit == 0 {
		a.InitialLimit = min(max(defaultInitialLimit, a.MinLimit), limit)
	}
	if a.Tolerance == 0 {
		a.Tolerance = defaultTolerance
	}
	if a.Backoff == 0 {
		a.Backoff = defaultBackoff
	}
	if a.Window == 0 {
		a.Window = defaultWindow
	}
	if a.MinSamples == 0 {
		a.MinSamples = defaultMinSamples
	}
	if a.ProbeInterval == 0 {
		a.ProbeInterval = defaultProbeInterval
	}
	return a, nil
}
