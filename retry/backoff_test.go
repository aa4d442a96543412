package retry_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/retry"
)

// Deterministic random sources: the lowest and the highest value.
func lowest(int64) int64    { return 0 }
func highest(n int64) int64 { return n - 1 }

func TestExponential(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name         string
		b            retry.Exponential
		n            int
		wantLo, want time.Duration // with the lowest and the highest draw
	}{
		{"defaults first", retry.Exponential{}, 0, 0, 50 * ms},
		{"defaults second", retry.Exponential{}, 1, 0, 100 * ms},
		{"defaults capped", retry.Exponential{}, 10, 0, 5 * time.Second},
		{"base", retry.Exponential{Base: 10 * ms, Cap: time.Second}, 3, 0, 80 * ms},
		{"cap", retry.Exponential{Base: 10 * ms, Cap: 50 * ms}, 3, 0, 50 * ms},
		{"huge n does not overflow", retry.Exponential{Base: 10 * ms, Cap: time.Second}, 1000, 0, time.Second},
		{"n 61", retry.Exponential{Base: 1, Cap: 1 << 62}, 61, 0, 1 << 61},
		{"n 62", retry.Exponential{Base: 1, Cap: 1 << 62}, 62, 0, 1 << 62},
		{"negative n is the first", retry.Exponential{Base: 10 * ms}, -1, 0, 10 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := tt.b, tt.b
			lo.Rand, hi.Rand = lowest, highest
			if got := lo.Delay(tt.n, 0); got != tt.wantLo {
				t.Errorf("lowest draw: got %v, want %v", got, tt.wantLo)
			}
			if got := hi.Delay(tt.n, 0); got != tt.want {
				t.Errorf("highest draw: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExponentialRandomStaysInRange(t *testing.T) {
	b := retry.Exponential{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond}
	seen := map[bool]bool{} // below and above the middle: the draw is spread
	for n := range 6 {
		upper := min(10*time.Millisecond<<n, 100*time.Millisecond)
		for range 200 {
			d := b.Delay(n, 0)
			if d < 0 || d > upper {
				t.Fatalf("Delay(%d): got %v, want within [0, %v]", n, d, upper)
			}
			seen[d < upper/2] = true
		}
	}
	if !seen[true] || !seen[false] {
		t.Errorf("got draws only on one side of the middle (%v), want full jitter", seen)
	}
}

func TestDecorrelated(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name           string
		b              retry.Decorrelated
		prev           time.Duration
		wantLo, wantHi time.Duration
	}{
		{"first", retry.Decorrelated{}, 0, 50 * ms, 150 * ms},
		{"follows prev", retry.Decorrelated{}, 200 * ms, 50 * ms, 600 * ms},
		{"capped", retry.Decorrelated{Cap: time.Second}, 800 * ms, 50 * ms, time.Second},
		{"prev below base", retry.Decorrelated{Base: 100 * ms}, 10 * ms, 100 * ms, 300 * ms},
		{"huge prev", retry.Decorrelated{}, 1<<63 - 1, 50 * ms, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := tt.b, tt.b
			lo.Rand, hi.Rand = lowest, highest
			if got := lo.Delay(4, tt.prev); got != tt.wantLo {
				t.Errorf("lowest draw: got %v, want %v", got, tt.wantLo)
			}
			if got := hi.Delay(4, tt.prev); got != tt.wantHi {
				t.Errorf("highest draw: got %v, want %v", got, tt.wantHi)
			}
		})
	}
}

func TestDecorrelatedSequenceStaysInRange(t *testing.T) {
	b := retry.Decorrelated{Base: 10 * time.Millisecond, Cap: 200 * time.Millisecond}
	var prev time.Duration
	for n := range 50 {
		d := b.Delay(n, prev)
		if d < 10*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("Delay(%d, %v): got %v, want within [10ms, 200ms]", n, prev, d)
		}
		prev = d
	}
}

func TestBrokenRandStaysInRange(t *testing.T) {
	for _, rnd := range []func(int64) int64{
		func(int64) int64 { return -5 },
		func(n int64) int64 { return n + 100 },
	} {
		if got := (retry.Exponential{Base: time.Second, Rand: rnd}).Delay(0, 0); got < 0 || got > time.Second {
			t.Errorf("Exponential: got %v, want within [0, 1s]", got)
		}
		if got := (retry.Decorrelated{Base: time.Second, Rand: rnd}).Delay(0, 0); got < time.Second || got > 3*time.Second {
			t.Errorf("Decorrelated: got %v, want within [1s, 3s]", got)
		}
	}
}

func TestConstantAndFunc(t *testing.T) {
	if got := retry.Constant(time.Second).Delay(7, time.Hour); got != time.Second {
		t.Errorf("Constant: got %v, want 1s", got)
	}
	if got := retry.Constant(-time.Second).Delay(0, 0); got != 0 {
		t.Errorf("negative Constant: got %v, want 0", got)
	}
	f := retry.BackoffFunc(func(n int, prev time.Duration) time.Duration { return prev + time.Duration(n) })
	if got := f.Delay(3, time.Second); got != time.Second+3 {
		t.Errorf("BackoffFunc: got %v, want 1.000000003s", got)
	}
}

func TestBackoffConcurrent(t *testing.T) {
	b := retry.Exponential{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := range 1000 {
				if d := b.Delay(n%8, 0); d < 0 || d > retry.DefaultCap {
					t.Errorf("got %v, want within [0, %v]", d, retry.DefaultCap)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestBackoffValidation(t *testing.T) {
	tests := []struct {
		name    string
		b       retry.Backoff
		wantErr string // "" for valid
	}{
		{"zero Exponential", retry.Exponential{}, ""},
		{"Exponential pointer", &retry.Exponential{Base: -1}, "Config.Backoff.Base is -1ns"},
		{"negative Base", retry.Exponential{Base: -time.Second}, "Config.Backoff.Base is -1s, want >= 0"},
		{"negative Cap", retry.Decorrelated{Cap: -time.Second}, "Config.Backoff.Cap is -1s, want >= 0"},
		{"Cap below Base", retry.Exponential{Base: time.Second, Cap: time.Millisecond}, "Config.Backoff.Cap is 1ms"},
		{"default Cap below Base", retry.Decorrelated{Base: time.Minute}, "Config.Backoff.Cap is 0s (zero means 5s), want >= Config.Backoff.Base (1m0s)"},
		{"negative Constant", retry.Constant(-time.Second), "Config.Backoff is Constant(-1s), want >= 0"},
		{"zero Constant", retry.Constant(0), ""},
		{"func", retry.BackoffFunc(func(int, time.Duration) time.Duration { return -1 }), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := retry.New(retry.Config{Backoff: tt.b})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
