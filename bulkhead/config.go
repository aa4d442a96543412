package bulkhead

import (
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
)

const (
	defaultLimit   = 64
	defaultMaxKeys = 1024
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
	// Zero means 64.
	Limit int
	// MaxQueue is how many attempts may wait for a slot while every slot
	// is busy (per key, in a Set); one more is rejected at once. Waiters
	// are admitted first come, first served, and an attempt that arrives
	// while others wait joins the queue behind them. Zero means no queue:
	// an attempt that finds every slot busy is rejected at once.
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
	// MeterProvider receives the metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// normalize validates c and returns it with its defaults filled in.
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
	return c, nil
}
