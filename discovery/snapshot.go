package discovery

import (
	"cmp"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"unsafe"
)

// snapshot is what a pick reads: the instances it may pick, built by the
// Balancer under its lock on every change (a new set, an ejection, a
// return) and swapped in whole, so that a pick takes no lock. Only the
// round-robin positions change after the swap.
type snapshot struct {
	eps       []*endpoint      // the candidates; empty: err
	invWeight []float64        // PeakEWMA with unequal weights: 1/weight per candidate; nil otherwise
	sched     []uint32         // RoundRobin with unequal weights: a cycle of indices into eps; nil otherwise
	cycle     modulus          // RoundRobin: by len(sched), or len(eps) without sched
	err       *NoInstanceError // the refusal when eps is empty
	rate      float64          // settings.rate

	// RoundRobin: once picks ran in parallel, they take their turns from
	// stripes rather than next (see take). Set at most once, read by
	// every pick.
	striped atomic.Bool
	stripes []stripe // a power of two of them

	// What the metrics report.
	eligible, incompatible, invalid, ejected int
	panic                                    bool

	// RoundRobin's position, alone on its cache line: every pick writes
	// it, and the words above, which every pick reads, must stay in the
	// other cores' caches meanwhile. 32 bits: at the wrap, once every 4G
	// picks, the cycle starts over and may cut a round short.
	_    [cacheLine]byte
	next atomic.Uint32
	_    [cacheLine - 4]byte
}

// A stripe is a round-robin position of its own, on its own cache line.
type stripe struct {
	next atomic.Uint32
	_    [cacheLine - 4]byte
}

// newStripes returns the stripes of a round-robin snapshot: a few per core,
// so that the goroutines picking at once seldom share one, each starting
// at a random turn.
func newStripes() []stripe {
	n := 16
	for n < 4*runtime.GOMAXPROCS(0) && n < 256 {
		n *= 2
	}
	st := make([]stripe, n)
	for i := range st {
		st[i].next.Store(rand.Uint32())
	}
	return st
}

// roundRobin returns the next candidate in turn, or the one after it when
// that one is avoid.
func (s *snapshot) roundRobin(avoid string) *endpoint {
	i := s.turn(s.take())
	if avoid != "" && len(s.eps) > 1 && s.eps[i].addr == avoid {
		// The next turn is another instance's unless concurrent picks took
		// it: then the neighbour will do.
		if i = s.turn(s.take()); s.eps[i].addr == avoid {
			i = (i + 1) % len(s.eps)
		}
	}
	return s.eps[i]
}

// take takes a round-robin turn and returns its number.
//
// One counter gives every instance its turn in a strict order, but when
// picks run in parallel on several cores its cache line moves from core to
// core at each one, and every pick waits for it. So the
// first time a pick finds that another took a turn under it, the
// snapshot's picks switch to stripes: positions of their own, one per
// goroutine (or a few goroutines). Each stripe goes round the whole cycle,
// so every instance still gets its share, give or take a turn or two per
// stripe, weights included; only the order across goroutines is no longer
// strict. A caller picking alone, one pick after another, never switches.
func (s *snapshot) take() uint32 {
	if !s.striped.Load() {
		seq := s.next.Load()
		if s.next.CompareAndSwap(seq, seq+1) {
			return seq + 1
		}
		s.striped.Store(true)
	}
	return s.stripes[stripeOf(len(s.stripes))].next.Add(1)
}

// stripeOf returns the stripe, among n (a power of two), of the calling
// goroutine. The address of a local variable tells goroutines apart at no
// cost: it lies in the goroutine's own stack, and goroutine stacks are
// made of 2KiB blocks that no two share. A stack that grows or shrinks
// moves, and takes its goroutine to another stripe, which does no harm.
func stripeOf(n int) int {
	var here byte
	block := uint64(uintptr(unsafe.Pointer(&here)) >> 11)
	return int(block * 0x9e3779b97f4a7c15 >> 32 & uint64(n-1))
}

// turn returns the index into eps of turn seq.
func (s *snapshot) turn(seq uint32) int {
	k := s.cycle.of(seq)
	if s.sched != nil {
		return int(s.sched[k])
	}
	return int(k)
}

// modulus takes remainders by one divisor with two multiplications, where
// a division would take several times as long: d*frac(a/d), with the
// fraction in 64-bit fixed point, exact for every 32-bit a and d.
type modulus struct{ d, m uint64 }

// newModulus returns the modulus by d, 0 < d < 2^32.
func newModulus(d int) modulus {
	return modulus{uint64(d), ^uint64(0)/uint64(d) + 1}
}

// of returns a % d.
func (c modulus) of(a uint32) uint64 {
	hi, _ := bits.Mul64(c.m*uint64(a), c.d)
	return hi
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
	// pick needs neither the time nor two decays. And that decay only
	// makes the older one cheaper: when it is the cheaper already, the
	// pick needs none.
	if sa > sb {
		return cheaper(a, b, la, lb, sa-sb, s.rate)
	}
	return cheaper(b, a, lb, la, sb-sa, s.rate)
}

// cheaper returns the cheaper of fresh, of load lf, and old, of load lo
// and older by age nanoseconds; fresh on a tie.
func cheaper(fresh, old *endpoint, lf, lo float64, age int64, rate float64) *endpoint {
	if lo < lf || lo > 0 && lo*decay(age, rate) < lf {
		return old
	}
	return fresh
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
