package discovery

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// snapshot is what a pick reads: the instances it may pick, built by the
// Balancer under its lock on every change (a new set, an ejection, a
// return) and swapped in whole, so that a pick takes no lock. Only next
// changes after the swap.
type snapshot struct {
	eps       []*endpoint      // the candidates; empty: err
	invWeight []float64        // PeakEWMA with unequal weights: 1/weight per candidate; nil otherwise
	sched     []uint32         // RoundRobin with unequal weights: a cycle of indices into eps; nil otherwise
	err       *NoInstanceError // the refusal when eps is empty
	rate      float64          // settings.rate

	// What the metrics report.
	eligible, incompatible, invalid, ejected int
	panic                                    bool

	next atomic.Uint64 // RoundRobin's position
}

// roundRobin returns the next candidate in turn, or the one after it when
// that one is avoid.
func (s *snapshot) roundRobin(avoid string) *endpoint {
	n := uint64(len(s.eps))
	i := s.at(s.next.Add(1), n)
	if avoid != "" && n > 1 && s.eps[i].addr == avoid {
		// The next turn is another instance's unless concurrent picks took
		// it: then the neighbour will do.
		if i = s.at(s.next.Add(1), n); s.eps[i].addr == avoid {
			i = (i + 1) % n
		}
	}
	return s.eps[i]
}

func (s *snapshot) at(seq, n uint64) uint64 {
	if s.sched != nil {
		return uint64(s.sched[seq%uint64(len(s.sched))])
	}
	return seq % n
}

// twoChoices draws two distinct candidates at random and returns the one
// of lower load; the other when one of them is avoid.
func (s *snapshot) twoChoices(avoid string) *endpoint {
	n := uint64(len(s.eps))
	if n == 1 {
		return s.eps[0]
	}
	r := rand.Uint64()
	i := (r & math.MaxUint32) * n >> 32
	j := (r >> 32) * (n - 1) >> 32
	if j >= i {
		j++
	}
	a, b := s.eps[i], s.eps[j]
	if avoid != "" {
		if a.addr == avoid {
			return b
		}
		if b.addr == avoid {
			return a
		}
	}
	la, sa := a.load()
	lb, sb := b.load()
	if s.invWeight != nil {
		la *= s.invWeight[i]
		lb *= s.invWeight[j]
	}
	// Both estimates decay until now; comparing them, only the decay of
	// the older one over the time between their stamps matters, so the
	// pick needs neither the time nor two decays.
	if sa > sb {
		lb *= decay(sa-sb, s.rate)
	} else {
		la *= decay(sb-sa, s.rate)
	}
	if lb < la {
		return b
	}
	return a
}

// typical returns the larger latency estimate of two candidates drawn at
// random: what a failure is measured against.
func (s *snapshot) typical(now int64, rate float64) float64 {
	n := uint64(len(s.eps))
	if n == 0 {
		return 0
	}
	r := rand.Uint64()
	a, b := s.eps[(r&math.MaxUint32)*n>>32], s.eps[(r>>32)*n>>32]
	return float64(max(a.latency(now, rate), b.latency(now, rate)))
}

// Bounds of a round-robin cycle, in turns: weights are scaled down to fit
// (each instance keeping at least one turn), which bounds the memory of a
// snapshot and the cost of building one at the price of a little precision.
const (
	minCycle         = 4096
	cyclePerInstance = 16
)

// schedule returns a round-robin cycle for weights (all > 0): each index
// appears in proportion to its weight, its turns spread evenly over the
// cycle and interleaved with the others'.
func schedule(weights []int) []uint32 {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	total := 0.0
	for _, w := range weights {
		total += float64(w / g)
	}
	scale := 1.0
	if limit := float64(max(minCycle, cyclePerInstance*len(weights))); total > limit {
		scale = limit / total
	}
	type turn struct {
		at float64
		i  uint32
	}
	var turns []turn
	for i, w := range weights {
		k := max(1, int(math.Round(float64(w/g)*scale)))
		for j := range k {
			turns = append(turns, turn{(float64(j) + 0.5) / float64(k), uint32(i)})
		}
	}
	slices.SortFunc(turns, func(x, y turn) int {
		if c := cmp.Compare(x.at, y.at); c != 0 {
			return c
		}
		return cmp.Compare(x.i, y.i)
	})
	cycle := make([]uint32, len(turns))
	for k, t := range turns {
		cycle[k] = t.i
	}
	return cycle
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
