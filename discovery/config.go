package discovery

import (
	"cmp"
	"fmt"
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Policy is how a Balancer chooses among the instances it may pick. The
// zero value is PeakEWMA.
type Policy uint8

const (
	// PeakEWMA picks the cheaper of two instances drawn at random (power of
	// two choices), the cost of an instance being its peak-EWMA latency
	// times its outstanding attempts plus one, divided by its weight. The
	// latency estimate jumps to any slower observation at once (the peak)
	// and otherwise fades over BalancerConfig.DecayTime, so that an
	// instance slow once is tried again a while later and, found fast,
	// takes its share again; a Failure (a 429 or a 503, a refused
	// connection) counts as slow (see
	// BalancerConfig.FailurePenalty), so that an instance that fails fast
	// does not draw traffic by its speed. An instance that answered nothing
	// yet costs nothing until its first attempt is outstanding, and is then
	// the costliest of all until that attempt ends: new instances, and
	// instances back from ejection, are probed one attempt at a time. An
	// attempt's latency runs from Pick to Done: time queued in a
	// per-instance bulkhead is part of what a call waits through that
	// instance, and counts.
	PeakEWMA Policy = iota
	// RoundRobin picks the instances in turn, each in proportion to its
	// weight, the turns of different weights interleaved. It reads no
	// clock. Picks made one after another follow one order; once picks
	// on several cores contend, goroutines take turns on separate
	// stripes of the cycle, so the order across goroutines is no longer
	// strict, while each instance keeps its weighted share.
	RoundRobin
)

// String returns "peak_ewma" or "round_robin".
func (p Policy) String() string {
	switch p {
	case PeakEWMA:
		return "peak_ewma"
	case RoundRobin:
		return "round_robin"
	}
	return "policy(" + strconv.Itoa(int(p)) + ")"
}

// BalancerConfig configures a Balancer. The zero BalancerConfig is valid:
// peak-EWMA power of two choices with a 10s decay and failures counted
// twice as slow as a typical instance, any API version, outlier ejection with Ejection's
// defaults, picks counted per service rather than per instance.
type BalancerConfig struct {
	// Policy chooses among the instances. Zero means PeakEWMA.
	Policy Policy
	// RequireVersion is the API version the client needs, MAJOR or
	// MAJOR.MINOR ("2", "v2.3"): only instances of that major version and
	// at least that minor version are picked; instances with no version or
	// one that does not parse are left out too, and reported (Status, the
	// bulwark.discovery.instances gauge). Empty means every instance,
	// whatever its version; versions are then not even parsed.
	RequireVersion string
	// DecayTime is the time constant of the peak-EWMA latency estimate:
	// an instance that answered slowly once is believed slow for about
	// this long. PeakEWMA only. Zero means 10s.
	DecayTime time.Duration
	// FailurePenalty weighs Failures, PeakEWMA only: a Failure counts as
	// a latency of at least FailurePenalty times the larger of the
	// instance's own estimate and a typical instance's (the larger of two
	// drawn at random), so that an instance answering 429 or 503 fast does
	// not draw traffic by its speed, and one that keeps failing grows
	// costlier with each failure. It must be 0 or >= 1; 1 counts a Failure
	// as no faster than a typical instance. Zero means 2.
	FailurePenalty float64
	// Ejection configures outlier ejection.
	Ejection Ejection
	// InstanceMetrics adds the attribute bulwark.discovery.instance (the
	// address) to bulwark.discovery.picks, one series per instance. A set
	// of instances that changes often then makes many series. False means
	// picks are counted per service only.
	InstanceMetrics bool
	// MeterProvider receives the bulwark.discovery.* instruments. Nil
	// means the global provider.
	MeterProvider metric.MeterProvider
}

// Ejection configures outlier ejection: an ejected instance is not picked
// until its ejection time has passed. Two rules eject: consecutive
// failures, judged at each Failure; and success rate, judged every
// Interval over the attempts that ended in it. Ignored outcomes count for
// neither. The zero Ejection is valid: 5 consecutive failures, or a success
// rate more than 1.9 standard deviations below the mean of at least 5
// instances with 100 attempts each per 10s; ejection for 30s times the
// instance's number of ejections, at most 300s; at most 10 % of the
// instances ejected at once (but always one); below 50 % healthy, every
// instance is picked.
type Ejection struct {
	// ConsecutiveFailures ejects an instance after that many Failures in a
	// row; while the cap on ejected instances spares it, every further
	// ConsecutiveFailures in the same run try again. Zero means 5; a
	// negative value turns the rule off.
	ConsecutiveFailures int
	// Interval is how often success rates are judged, over the attempts
	// that ended since the last time. Zero means 10s.
	Interval time.Duration
	// MinimumRequests is how many attempts must have ended on an instance
	// in an Interval for its success rate to be judged. Zero means 100.
	MinimumRequests int
	// MinimumHosts is how many instances must have MinimumRequests for the
	// standard-deviation rule to apply. Zero means 5.
	MinimumHosts int
	// StdevFactor ejects an instance whose success rate is more than
	// StdevFactor standard deviations below the mean success rate of the
	// instances judged (all of them healthy: no ejection). Zero means 1.9;
	// a negative value turns the rule off.
	StdevFactor float64
	// FailureRatio ejects an instance whose share of failures in an
	// Interval is at least this, whatever the other instances do: the
	// simple threshold, which needs no MinimumHosts. It must be within
	// [0, 1]. Zero means the rule is off.
	FailureRatio float64
	// BaseTime is how long the first ejection of an instance lasts; the
	// n-th lasts n times as long. The count goes down by one for each
	// BaseTime the instance spends back in service. Zero means 30s.
	BaseTime time.Duration
	// MaxTime caps the length of an ejection. Zero means 300s; it must not
	// be below BaseTime.
	MaxTime time.Duration
	// MaxEjectedRatio caps the share of the eligible instances ejected at
	// once, rounded down but never below one instance. It must be within
	// [0, 1]. Zero means 0.1.
	MaxEjectedRatio float64
	// PanicThreshold: when fewer than this share of the eligible
	// instances are healthy (not ejected), every eligible instance is
	// picked, ejected or not, so that a fleet in trouble is not crushed
	// onto its last few members. It must be within [0, 1]; a negative
	// value turns panic mode off. Zero means 0.5.
	PanicThreshold float64
}

// Defaults, stated in the field comments.
const (
	defaultDecayTime       = 10 * time.Second
	defaultFailurePenalty  = 2
	defaultConsecutive     = 5
	defaultInterval        = 10 * time.Second
	defaultMinimumRequests = 100
	defaultMinimumHosts    = 5
	defaultStdevFactor     = 1.9
	defaultBaseTime        = 30 * time.Second
	defaultMaxTime         = 300 * time.Second
	defaultMaxEjectedRatio = 0.1
	defaultPanicThreshold  = 0.5
)

// settings is a BalancerConfig validated, defaults applied.
type settings struct {
	policy      Policy
	require     Requirement
	requireSet  bool
	rate        float64 // 1 / DecayTime in nanoseconds: the decay rate
	penalty     float64
	consecutive int64 // 0: off
	interval    time.Duration
	minRequests uint64
	minHosts    int
	stdev       float64 // < 0: off
	failRatio   float64 // 0: off
	base, max   time.Duration
	maxEjected  float64
	panic       float64 // < 0: off
	perInstance bool
}

// successRate reports whether attempts must be counted for the
// success-rate rules.
func (s *settings) successRate() bool { return s.stdev >= 0 || s.failRatio > 0 }

func badFloat(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }

func settle(cfg BalancerConfig) (*settings, error) {
	e := cfg.Ejection
	switch {
	case cfg.Policy > RoundRobin:
		return nil, fmt.Errorf("discovery: BalancerConfig.Policy is %v, want PeakEWMA or RoundRobin", cfg.Policy)
	case cfg.DecayTime < 0:
		return nil, fmt.Errorf("discovery: BalancerConfig.DecayTime is %v, want >= 0", cfg.DecayTime)
	case badFloat(cfg.FailurePenalty) || cfg.FailurePenalty != 0 && cfg.FailurePenalty < 1:
		return nil, fmt.Errorf("discovery: BalancerConfig.FailurePenalty is %v, want >= 1 (or 0 for 2)", cfg.FailurePenalty)
	case e.Interval < 0:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.Interval is %v, want >= 0", e.Interval)
	case e.MinimumRequests < 0:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.MinimumRequests is %d, want >= 0", e.MinimumRequests)
	case e.MinimumHosts < 0:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.MinimumHosts is %d, want >= 0", e.MinimumHosts)
	case badFloat(e.StdevFactor):
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.StdevFactor is %v, want a finite number", e.StdevFactor)
	case badFloat(e.FailureRatio) || e.FailureRatio < 0 || e.FailureRatio > 1:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.FailureRatio is %v, want within [0, 1]", e.FailureRatio)
	case e.BaseTime < 0:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.BaseTime is %v, want >= 0", e.BaseTime)
	case e.MaxTime < 0:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.MaxTime is %v, want >= 0", e.MaxTime)
	case badFloat(e.MaxEjectedRatio) || e.MaxEjectedRatio < 0 || e.MaxEjectedRatio > 1:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.MaxEjectedRatio is %v, want within [0, 1]", e.MaxEjectedRatio)
	case badFloat(e.PanicThreshold) || e.PanicThreshold > 1:
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.PanicThreshold is %v, want within [0, 1] (or negative for off)", e.PanicThreshold)
	}
	s := &settings{
		policy:      cfg.Policy,
		rate:        1 / float64(cmp.Or(cfg.DecayTime, defaultDecayTime)),
		penalty:     cmp.Or(cfg.FailurePenalty, defaultFailurePenalty),
		consecutive: int64(cmp.Or(e.ConsecutiveFailures, defaultConsecutive)),
		interval:    cmp.Or(e.Interval, defaultInterval),
		minRequests: uint64(cmp.Or(e.MinimumRequests, defaultMinimumRequests)),
		minHosts:    cmp.Or(e.MinimumHosts, defaultMinimumHosts),
		stdev:       cmp.Or(e.StdevFactor, defaultStdevFactor),
		failRatio:   e.FailureRatio,
		base:        cmp.Or(e.BaseTime, defaultBaseTime),
		max:         cmp.Or(e.MaxTime, defaultMaxTime),
		maxEjected:  cmp.Or(e.MaxEjectedRatio, defaultMaxEjectedRatio),
		panic:       cmp.Or(e.PanicThreshold, defaultPanicThreshold),
		perInstance: cfg.InstanceMetrics,
	}
	if s.consecutive < 0 {
		s.consecutive = 0
	}
	if s.max < s.base {
		return nil, fmt.Errorf("discovery: BalancerConfig.Ejection.MaxTime (%v) is below BaseTime (%v)", s.max, s.base)
	}
	if cfg.RequireVersion != "" {
		r, err := ParseRequirement(cfg.RequireVersion)
		if err != nil {
			return nil, fmt.Errorf("discovery: BalancerConfig.RequireVersion: %w", err)
		}
		s.require, s.requireSet = r, true
	}
	return s, nil
}
