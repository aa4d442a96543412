package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

type distKind uint8

const (
	distNone distKind = iota
	distFixed
	distNormal
	distLongTail
)

// Dist is a latency distribution. The zero Dist is no latency at all. Dist
// values are comparable, so that a Schedule can tell when a Behavior
// changes.
type Dist struct {
	kind distKind
	a, b time.Duration
}

// Fixed is always d.
func Fixed(d time.Duration) Dist { return Dist{kind: distFixed, a: d} }

// Normal is a normal distribution of the given mean and standard
// deviation, cut at zero.
func Normal(mean, stddev time.Duration) Dist { return Dist{kind: distNormal, a: mean, b: stddev} }

// LongTail is a log-normal distribution with the given median and 99th
// percentile: most calls near the median, a few far beyond it.
func LongTail(median, p99 time.Duration) Dist { return Dist{kind: distLongTail, a: median, b: p99} }

// z99 is the standard normal's 99th percentile.
const z99 = 2.3263478740408408

// validate reports a distribution that cannot be sampled.
func (d Dist) validate(name string) error {
	switch {
	case d.a < 0 || d.b < 0:
		return fmt.Errorf("fleet: %s is %v, want no negative parameter", name, d)
	case d.kind == distLongTail && (d.a == 0 || d.b < d.a):
		return fmt.Errorf("fleet: %s is %v, want 0 < median <= p99", name, d)
	}
	return nil
}

// Sample draws one latency. It is safe for concurrent use.
func (d Dist) Sample() time.Duration {
	switch d.kind {
	case distFixed:
		return d.a
	case distNormal:
		v := float64(d.a) + rand.NormFloat64()*float64(d.b)
		return time.Duration(max(v, 0))
	case distLongTail:
		sigma := math.Log(float64(d.b)/float64(d.a)) / z99
		return time.Duration(float64(d.a) * math.Exp(rand.NormFloat64()*sigma))
	}
	return 0
}

// String describes the distribution: "normal(10ms, sd 2ms)".
func (d Dist) String() string {
	switch d.kind {
	case distFixed:
		return fmt.Sprintf("fixed(%v)", d.a)
	case distNormal:
		return fmt.Sprintf("normal(%v, sd %v)", d.a, d.b)
	case distLongTail:
		return fmt.Sprintf("long-tail(median %v, p99 %v)", d.a, d.b)
	}
	return "none"
}
