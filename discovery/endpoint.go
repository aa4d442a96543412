package discovery

import (
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/metric"
)

// endpoint is the state a Balancer keeps for one eligible instance, from
// the update that brings it to the one that removes it: an update that
// keeps the address keeps the endpoint, its latency estimate and its
// ejection history.
//
// Its words fall in two parts: what picks only read or the Balancer writes
// under its lock (endpointCold), and the counters every attempt writes
// (endpointHot), alone on a cache line so that writing them never evicts
// the other part from another core's cache.
type endpoint struct {
	endpointCold
	_ [(cacheLine - unsafe.Sizeof(endpointCold{})%cacheLine) % cacheLine]byte
	endpointHot
}

// cacheLine is the size of a cache line, in bytes, on the machines that
// matter (amd64, and arm64 but for a few that have 128).
const cacheLine = 64

type endpointCold struct {
	addr string

	// Under Balancer.mu.
	inst      Instance
	weight    int
	removed   bool
	ejected   bool
	until     time.Time // end of the ejection
	ejections int       // ejections counted for the next one's length
	returned  time.Time // end of the last ejection
	judged    [2]uint64 // ended[Success], ended[Failure] at the last success-rate judgement
	pickOpts  *[3]metric.ObserveOption
}

// endpointHot fills one cache line. With endpointCold padded to whole
// lines, an endpoint's size is a multiple of the line (256 bytes now), a
// size class of the allocator's, whose objects all start on a line.
type endpointHot struct {
	// Attempts started (PeakEWMA only) and ended, by outcome, since the
	// endpoint was made: cumulative, so that the picks counter they feed
	// only grows. Those in flight are the difference, which spares a
	// release a second atomic write.
	started atomic.Uint64
	ended   [3]atomic.Uint64 // indexed by bulwark.Outcome

	consecutive atomic.Int64 // Failures in a row

	// The peak-EWMA estimate: cost in nanoseconds (float64 bits), as of
	// stamp (Balancer.since). Zero cost: never observed. The two words are
	// read and written apart; a torn read (a new cost with the old stamp)
	// only decays the new cost a little more than due.
	cost  atomic.Uint64
	stamp atomic.Int64

	_ [cacheLine - 7*8]byte
}

// outstanding returns how many attempts are in flight on ep. Only
// PeakEWMA counts starts: under RoundRobin it means nothing.
func (ep *endpoint) outstanding() int64 {
	// The ends first: an attempt ends after it starts, so starts read
	// later are at least as many, and the difference is never negative.
	ended := ep.ended[0].Load() + ep.ended[1].Load() + ep.ended[2].Load()
	return int64(ep.started.Load() - ended)
}

// observe folds the latency of one attempt (nanoseconds) into the
// estimate at time now (Balancer.since). The estimate seen by picks decays
// towards zero as time passes (load); an observation above it replaces it
// (the peak), one below pulls it down in proportion to the attempt's
// length over DecayTime. A failure counts as at least penalty times the
// larger of the estimate and ref, the estimate of a typical instance: an
// instance that fails fast must not look fast.
func (ep *endpoint) observe(now, rtt int64, failed bool, ref float64, s *settings) {
	obs := float64(max(rtt, 1)) // 1ns at least: zero means never observed
	if failed {
		obs = max(obs, s.penalty*ref)
	}
	for {
		// A compare-and-swap on the cost rather than a lock: two attempts
		// ending together may leave the stamp of the earlier one, which
		// only decays the next reading by the nanoseconds between them.
		old := ep.cost.Load()
		cost := math.Float64frombits(old) * decay(now-ep.stamp.Load(), s.rate)
		o := obs
		if failed {
			o = max(o, s.penalty*cost)
		}
		if o > cost {
			cost = o // the peak: a slow answer counts at once
		} else {
			w := decay(rtt, s.rate)
			cost = cost*w + o*(1-w)
		}
		if ep.cost.CompareAndSwap(old, math.Float64bits(cost)) {
			ep.stamp.Store(now)
			return
		}
	}
}

// forget drops the latency estimate: an instance back from ejection is
// probed afresh, like a new one, rather than judged by the failures that
// ejected it.
func (ep *endpoint) forget() { ep.cost.Store(0) }

// probing is the cost of an instance that answered nothing yet while an
// attempt is outstanding on it: above any real estimate.
const probing = 1e300

// load returns the cost of picking ep, before weighting and before the
// decay of its estimate since stamp, the time of its last observation.
func (ep *endpoint) load() (load float64, stamp int64) {
	out := ep.outstanding()
	cost := math.Float64frombits(ep.cost.Load())
	stamp = ep.stamp.Load()
	if cost == 0 {
		if out == 0 {
			return 0, stamp
		}
		cost = probing
	}
	return cost * float64(out+1), stamp
}

// latency returns the estimate decayed to now.
func (ep *endpoint) latency(now int64, rate float64) time.Duration {
	return time.Duration(math.Float64frombits(ep.cost.Load()) * decay(now-ep.stamp.Load(), rate))
}

// decay returns e^(-td*rate), the weight left to an estimate td
// nanoseconds old; 1 for td <= 0. Picks and releases mostly ask about
// times far shorter than DecayTime, where a cubic is exact to 1e-7 and
// several times cheaper than math.Exp.
func decay(td int64, rate float64) float64 {
	x := float64(max(td, 0)) * rate
	if x < 0.01 {
		// 1 - x + x²/2 - x³/6, in terms that do not wait on each other,
		// and with no division, which is slow.
		return (1 - x) + x*x*(0.5-x*(1.0/6))
	}
	return math.Exp(-x)
}
