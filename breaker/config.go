package breaker

import (
	"fmt"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Config configures a Breaker, or each breaker of a Set. The zero Config is
// valid: it trips when at least half of at least 20 calls judged in the
// last 30s failed, stays open 5s, then lets 3 trial calls through.
type Config struct {
	// FailureRatio trips the breaker when failures make up at least this
	// share of the calls judged in the rolling Window (successes plus
	// failures; Ignored outcomes are not judged). It must be within (0, 1].
	// Zero means 0.5.
	FailureRatio float64
	// MinimumCalls is how many calls must be judged in the Window before
	// FailureRatio applies, so that two failures out of three calls do not
	// trip a quiet breaker. Zero means 20.
	MinimumCalls int
	// Window is the length of the rolling window the failure rate is
	// measured over. It is rounded up to a whole number of BucketPeriods.
	// Zero means 30s.
	Window time.Duration
	// BucketPeriod is the step by which the window rolls: every
	// BucketPeriod the oldest bucket of calls is forgotten. It must not
	// exceed Window; equal to Window, the window is fixed and cleared at
	// once every Window. Zero means Window/10.
	BucketPeriod time.Duration
	// ConsecutiveFailures trips the breaker when that many judged calls
	// in a row failed within the Window, whatever the failure rate and
	// MinimumCalls. Zero means the rule is off.
	ConsecutiveFailures int
	// OpenDuration is how long an open breaker refuses every call before
	// it turns half-open and admits trial calls. Zero means 5s.
	OpenDuration time.Duration
	// HalfOpenTrials is how many trial calls a half-open breaker admits in
	// one half-open period (a trial that succeeds keeps its slot; only an
	// Ignored one gives it back), and how many of them must succeed in a row
	// to close it; one failed trial opens it again. Zero means 3.
	HalfOpenTrials int
	// SlowCallThreshold turns a Success that took longer than this into a
	// Failure. The clock (monotonic) starts when the attempt really starts:
	// under a bulwark.Stack, once every guard admitted it, so time queued in
	// a bulkhead is not the endpoint's; it stops at Done (for HTTP, when the
	// body is closed or read to the end, so a caller that reads slowly is
	// charged too). Zero means off,
	// and then no clock is read for it.
	SlowCallThreshold time.Duration
	// TrialTimeout bounds how long a half-open trial may go without
	// reporting: once one has been in flight this long, the next attempt
	// refused for want of a trial slot reports it as a Failure on its
	// behalf (its own late report is then dropped), which opens the
	// breaker again, so that a lost Permit cannot keep the breaker
	// half-open for ever. Zero means 30s.
	TrialTimeout time.Duration
	// MaxKeys bounds the number of keys a Set holds; a key not used
	// lately is forgotten beyond it (its breaker starts closed when the
	// key comes back). A Breaker ignores it. Zero means 1024.
	MaxKeys int
	// OnStateChange, if not nil, is called with every state change, in
	// order for each breaker, with no lock held: it may call back into the
	// breaker. It runs on the goroutine of a call that caused or observed
	// the change, so keep it short; a panic in it reaches that caller (an
	// attempt it was admitting is then refused by the panic and reported
	// Ignored, its trial slot given back). Nil means no callback.
	OnStateChange func(Event)
	// MeterProvider receives the bulwark.breaker.* instruments. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
}

// Defaults, stated in the field comments of Config.
const (
	defaultFailureRatio   = 0.5
	defaultMinimumCalls   = 20
	defaultWindow         = 30 * time.Second
	defaultBuckets        = 10
	maxBuckets            = 1000 // per window: memory per key, and gobreaker walks them under its lock
	defaultOpenDuration   = 5 * time.Second
	defaultHalfOpenTrials = 3
	defaultTrialTimeout   = 30 * time.Second
	defaultMaxKeys        = 1024
)

// shared is what every breaker built from one Config holds in common: the
// settled configuration and the instruments.
type shared struct {
	ratio         float64
	minCalls      uint64
	consecutive   uint32
	window        time.Duration
	bucket        time.Duration
	open          time.Duration
	trials        uint32
	slow          time.Duration
	trialTimeout  time.Duration
	maxKeys       int
	onStateChange func(Event)

	// epoch is the origin of the monotonic readings kept in Permits and
	// trials: time.Since(epoch) reads the monotonic clock.
	epoch time.Time

	meter       metric.Meter
	state       metric.Int64ObservableGauge
	transitions metric.Int64Counter
	rejections  metric.Int64ObservableCounter
}

// settle validates cfg, applies its defaults and creates the instruments.
func settle(cfg Config) (*shared, error) {
	s := &shared{
		ratio:         cfg.FailureRatio,
		window:        cfg.Window,
		bucket:        cfg.BucketPeriod,
		open:          cfg.OpenDuration,
		slow:          cfg.SlowCallThreshold,
		trialTimeout:  cfg.TrialTimeout,
		maxKeys:       cfg.MaxKeys,
		onStateChange: cfg.OnStateChange,
		epoch:         time.Now(),
	}
	switch {
	case math.IsNaN(cfg.FailureRatio) || cfg.FailureRatio < 0 || cfg.FailureRatio > 1:
		return nil, fmt.Errorf("breaker: Config.FailureRatio is %v, want within (0, 1] (or 0 for 0.5)", cfg.FailureRatio)
	case cfg.MinimumCalls < 0 || uint64(cfg.MinimumCalls) > math.MaxUint32:
		return nil, fmt.Errorf("breaker: Config.MinimumCalls is %d, want >= 0 and <= %d", cfg.MinimumCalls, uint32(math.MaxUint32))
	case cfg.Window < 0:
		return nil, fmt.Errorf("breaker: Config.Window is %v, want >= 0", cfg.Window)
	case cfg.BucketPeriod < 0:
		return nil, fmt.Errorf("breaker: Config.BucketPeriod is %v, want >= 0", cfg.BucketPeriod)
	case cfg.ConsecutiveFailures < 0 || uint64(cfg.ConsecutiveFailures) > math.MaxUint32:
		return nil, fmt.Errorf("breaker: Config.ConsecutiveFailures is %d, want >= 0 and <= %d", cfg.ConsecutiveFailures, uint32(math.MaxUint32))
	case cfg.OpenDuration < 0:
		return nil, fmt.Errorf("breaker: Config.OpenDuration is %v, want >= 0", cfg.OpenDuration)
	case cfg.HalfOpenTrials < 0 || uint64(cfg.HalfOpenTrials) > math.MaxUint32:
		return nil, fmt.Errorf("breaker: Config.HalfOpenTrials is %d, want >= 0 and <= %d", cfg.HalfOpenTrials, uint32(math.MaxUint32))
	case cfg.SlowCallThreshold < 0:
		return nil, fmt.Errorf("breaker: Config.SlowCallThreshold is %v, want >= 0", cfg.SlowCallThreshold)
	case cfg.TrialTimeout < 0:
		return nil, fmt.Errorf("breaker: Config.TrialTimeout is %v, want >= 0", cfg.TrialTimeout)
	case cfg.MaxKeys < 0:
		return nil, fmt.Errorf("breaker: Config.MaxKeys is %d, want >= 0", cfg.MaxKeys)
	}
	if s.ratio == 0 {
		s.ratio = defaultFailureRatio
	}
	s.minCalls = uint64(cfg.MinimumCalls)
	if s.minCalls == 0 {
		s.minCalls = defaultMinimumCalls
	}
	s.consecutive = uint32(cfg.ConsecutiveFailures)
	if s.window == 0 {
		s.window = defaultWindow
	}
	if s.bucket == 0 {
		s.bucket = s.window / defaultBuckets
		if s.bucket == 0 { // too short to split in ten: one fixed window
			s.bucket = s.window
		}
	}
	if s.window < s.bucket {
		return nil, fmt.Errorf("breaker: Config.Window (%v) is shorter than Config.BucketPeriod (%v)", s.window, s.bucket)
	}
	if s.window/s.bucket > maxBuckets {
		// Each bucket is memory per key, and gobreaker walks them under its
		// lock: a hairline BucketPeriod must not cost megabytes per breaker.
		return nil, fmt.Errorf("breaker: Config.BucketPeriod (%v) splits Config.Window (%v) into %d buckets, want at most %d",
			s.bucket, s.window, s.window/s.bucket, maxBuckets)
	}
	if s.open == 0 {
		s.open = defaultOpenDuration
	}
	s.trials = uint32(cfg.HalfOpenTrials)
	if s.trials == 0 {
		s.trials = defaultHalfOpenTrials
	}
	if s.trialTimeout == 0 {
		s.trialTimeout = defaultTrialTimeout
	}
	if s.maxKeys == 0 {
		s.maxKeys = defaultMaxKeys
	}
	if err := s.instruments(cfg.MeterProvider); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *shared) instruments(mp metric.MeterProvider) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	s.meter = mp.Meter("github.com/bulwarkrpc/bulwark/breaker")
	var err error
	s.state, err = s.meter.Int64ObservableGauge("bulwark.breaker.state",
		metric.WithDescription("State of each breaker: 0 closed, 1 half-open, 2 open."),
		metric.WithUnit("{state}"))
	if err != nil {
		return fmt.Errorf("breaker: creating instruments: %w", err)
	}
	s.transitions, err = s.meter.Int64Counter("bulwark.breaker.transitions",
		metric.WithDescription("State changes of breakers."),
		metric.WithUnit("{transition}"))
	if err != nil {
		return fmt.Errorf("breaker: creating instruments: %w", err)
	}
	// Refusals are counted in an atomic of the breaker and observed at
	// collection time: while a breaker is open every attempt is refused,
	// and a synchronous counter would cost each of them more than the
	// refusal itself.
	s.rejections, err = s.meter.Int64ObservableCounter("bulwark.breaker.rejections",
		metric.WithDescription("Attempts refused by a breaker, by reason: open, or half_open_full when every trial slot is taken."),
		metric.WithUnit("{attempt}"))
	if err != nil {
		return fmt.Errorf("breaker: creating instruments: %w", err)
	}
	return nil
}

// settings returns the gobreaker settings of one breaker; onChange is the
// breaker's recorder of state changes.
func (s *shared) settings(onChange func(string, gobreaker.State, gobreaker.State)) gobreaker.Settings {
	// gobreaker admits strictly after its open period ends; one nanosecond
	// less makes it admit from trip+OpenDuration on, as OpenError.RetryAt
	// says. (Zero would mean its own default of 60s.)
	timeout := s.open
	if timeout > 1 {
		timeout--
	}
	return gobreaker.Settings{
		MaxRequests:   s.trials,
		Interval:      s.window,
		BucketPeriod:  s.bucket,
		Timeout:       timeout,
		ReadyToTrip:   s.readyToTrip,
		OnStateChange: onChange,
		IsExcluded:    isIgnored,
	}
}

// readyToTrip implements both trip rules. gobreaker calls it, under its
// lock, after each failure judged in the closed state.
func (s *shared) readyToTrip(c gobreaker.Counts) bool {
	if s.consecutive > 0 && c.ConsecutiveFailures >= s.consecutive {
		return true
	}
	judged := uint64(c.TotalSuccesses) + uint64(c.TotalFailures)
	return judged >= s.minCalls && float64(c.TotalFailures) >= s.ratio*float64(judged)
}

// since returns the monotonic time elapsed since s.epoch.
func (s *shared) since() int64 { return int64(time.Since(s.epoch)) }
