package retry_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/retry"
)

func mustLatency(t testing.TB, cfg retry.LatencyConfig) *retry.Latency {
	t.Helper()
	l, err := retry.NewLatency(cfg)
	if err != nil {
		t.Fatalf("NewLatency: got %v, want nil", err)
	}
	return l
}

func TestLatencyConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     retry.LatencyConfig
		wantErr string
	}{
		{"zero", retry.LatencyConfig{}, ""},
		{"small window takes a smaller default MinSamples", retry.LatencyConfig{Window: 10}, ""},
		{"one", retry.LatencyConfig{Window: 1, MinSamples: 1}, ""},
		{"negative window", retry.LatencyConfig{Window: -1}, "retry: LatencyConfig.Window is -1, want >= 0"},
		{"negative min", retry.LatencyConfig{MinSamples: -1}, "retry: LatencyConfig.MinSamples is -1, want >= 0"},
		{"min above window", retry.LatencyConfig{Window: 10, MinSamples: 11}, "retry: LatencyConfig.MinSamples is 11, want <= Window (10)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := retry.NewLatency(tt.cfg)
			switch {
			case tt.wantErr == "" && (err != nil || l == nil):
				t.Errorf("got %v, %v, want a Latency", l, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLatencyMinSamples(t *testing.T) {
	l := mustLatency(t, retry.LatencyConfig{Window: 100, MinSamples: 10})
	for i := range 9 {
		l.Observe(time.Millisecond)
		if d, ok := l.Quantile(0.5); ok {
			t.Fatalf("after %d observations: got %v, true, want false", i+1, d)
		}
	}
	l.Observe(time.Millisecond)
	if _, ok := l.Quantile(0.5); !ok {
		t.Fatal("after 10 observations: got false, want an answer")
	}
}

func TestLatencyQuantiles(t *testing.T) {
	l := mustLatency(t, retry.LatencyConfig{Window: 10000})
	// 1ms, 2ms, ..., 1000ms, shuffled.
	for _, i := range rand.Perm(1000) {
		l.Observe(time.Duration(i+1) * time.Millisecond)
	}
	for _, q := range []float64{0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		want := time.Duration(max(math.Ceil(q*1000), 1)) * time.Millisecond
		got, ok := l.Quantile(q)
		if !ok || math.Abs(float64(got-want)) > 0.02*float64(want) {
			t.Errorf("Quantile(%v): got %v, %v, want %v within 2%%", q, got, ok, want)
		}
	}
}

func TestLatencyRange(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 31, 32, 33, 1000, time.Microsecond + 7, 3 * time.Millisecond,
		1234567 * time.Microsecond, 10 * time.Minute, 30 * time.Minute} {
		l := mustLatency(t, retry.LatencyConfig{Window: 1, MinSamples: 1})
		l.Observe(d)
		got, ok := l.Quantile(0.5)
		if !ok || math.Abs(float64(got-d)) > 0.016*float64(d)+0.5 {
			t.Errorf("Observe(%v): got %v, %v, want within 1.6%%", d, got, ok)
		}
	}
	// Beyond the range: negatives count as zero, huge values in the last
	// bucket.
	l := mustLatency(t, retry.LatencyConfig{Window: 2, MinSamples: 2})
	l.Observe(-time.Second)
	l.Observe(1<<63 - 1)
	if got, _ := l.Quantile(0); got != 0 {
		t.Errorf("negative: got %v, want 0", got)
	}
	if got, _ := l.Quantile(1); got < 30*time.Minute {
		t.Errorf("huge: got %v, want at least 30m", got)
	}
}

func TestLatencyBadQuantile(t *testing.T) {
	l := mustLatency(t, retry.LatencyConfig{Window: 1, MinSamples: 1})
	l.Observe(time.Second)
	for _, q := range []float64{-0.1, 1.1, math.NaN(), math.Inf(1)} {
		if d, ok := l.Quantile(q); ok {
			t.Errorf("Quantile(%v): got %v, true, want false", q, d)
		}
	}
}

// TestLatencyForgets checks recency: the tracker answers from the last
// Window to 2·Window observations.
func TestLatencyForgets(t *testing.T) {
	const w = 100
	l := mustLatency(t, retry.LatencyConfig{Window: w, MinSamples: 10})
	for range w {
		l.Observe(10 * time.Millisecond)
	}
	for range w / 2 {
		l.Observe(100 * time.Millisecond)
	}
	// Both generations are in view: 100 old, 50 new.
	if got, _ := l.Quantile(0.5); !near(got, 10*time.Millisecond) {
		t.Errorf("after 100 + 50: median got %v, want about 10ms", got)
	}
	if got, _ := l.Quantile(0.9); !near(got, 100*time.Millisecond) {
		t.Errorf("after 100 + 50: p90 got %v, want about 100ms", got)
	}
	for range w / 2 {
		l.Observe(100 * time.Millisecond)
	}
	// The 10ms generation is gone.
	if got, _ := l.Quantile(0); !near(got, 100*time.Millisecond) {
		t.Errorf("after 100 + 100: minimum got %v, want about 100ms", got)
	}
	for range w - 1 {
		l.Observe(time.Millisecond)
	}
	if got, _ := l.Quantile(0.5); !near(got, 100*time.Millisecond) {
		t.Errorf("after 100 + 100 + 99: median got %v, want about 100ms", got)
	}
	if got, _ := l.Quantile(0); !near(got, time.Millisecond) {
		t.Errorf("after 100 + 100 + 99: minimum got %v, want about 1ms", got)
	}
}

func near(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= 0.02*float64(want)
}

// TestLatencyConcurrent observes and reads from many goroutines, across
// many rotations: answers stay within the observed range.
func TestLatencyConcurrent(t *testing.T) {
	l := mustLatency(t, retry.LatencyConfig{Window: 64, MinSamples: 1})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				l.Observe(time.Duration(10+(g+i)%10) * time.Millisecond)
				if d, ok := l.Quantile(0.99); ok && (d < 9*time.Millisecond || d > 21*time.Millisecond) {
					t.Errorf("Quantile(0.99): got %v, want within [10ms, 19ms] ± 2%%", d)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLatencyAllocs(t *testing.T) {
	l := mustLatency(t, retry.LatencyConfig{Window: 10})
	if got := testing.AllocsPerRun(1000, func() { l.Observe(time.Millisecond) }); got != 0 {
		t.Errorf("Observe: got %v allocations, want 0", got)
	}
	if got := testing.AllocsPerRun(1000, func() { l.Quantile(0.99) }); got != 0 {
		t.Errorf("Quantile: got %v allocations, want 0", got)
	}
}
