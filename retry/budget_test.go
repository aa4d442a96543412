package retry_test

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark/retry"
)

func mustBudget(t testing.TB, cfg retry.BudgetConfig) *retry.Budget {
	t.Helper()
	b, err := retry.NewBudget(cfg)
	if err != nil {
		t.Fatalf("NewBudget: got %v, want nil", err)
	}
	return b
}

// withdrawAll withdraws until the budget refuses and returns how many it
// allowed.
func withdrawAll(b *retry.Budget) int {
	n := 0
	for b.Withdraw() {
		n++
		if n > 1e6 {
			break
		}
	}
	return n
}

func TestBudgetConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     retry.BudgetConfig
		wantErr string
	}{
		{"zero", retry.BudgetConfig{}, ""},
		{"ratio one", retry.BudgetConfig{Ratio: 1}, ""},
		{"tiny", retry.BudgetConfig{Ratio: 1e-9, PerSecond: 1e-9, Window: time.Millisecond}, ""},
		{"negative ratio", retry.BudgetConfig{Ratio: -0.1}, "retry: BudgetConfig.Ratio is -0.1, want within [0, 1]"},
		{"ratio above one", retry.BudgetConfig{Ratio: 1.5}, "BudgetConfig.Ratio is 1.5"},
		{"NaN ratio", retry.BudgetConfig{Ratio: math.NaN()}, "BudgetConfig.Ratio is NaN"},
		{"negative floor", retry.BudgetConfig{PerSecond: -1}, "retry: BudgetConfig.PerSecond is -1, want a finite number >= 0"},
		{"infinite floor", retry.BudgetConfig{PerSecond: math.Inf(1)}, "BudgetConfig.PerSecond is +Inf"},
		{"negative window", retry.BudgetConfig{Window: -time.Second}, "retry: BudgetConfig.Window is -1s, want 0 or >= 1ms"},
		{"tiny window", retry.BudgetConfig{Window: time.Microsecond}, "BudgetConfig.Window is 1µs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := retry.NewBudget(tt.cfg)
			switch {
			case tt.wantErr == "" && (err != nil || b == nil):
				t.Errorf("got %v, %v, want a Budget", b, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBudgetAllowance(t *testing.T) {
	tests := []struct {
		name     string
		cfg      retry.BudgetConfig
		requests int
		want     int
	}{
		{"defaults, idle: the floor of 10/s over 10s", retry.BudgetConfig{}, 0, 100},
		{"defaults: 20 % of requests on top", retry.BudgetConfig{}, 1000, 300},
		{"floor only", retry.BudgetConfig{PerSecond: 2, Ratio: 1e-9, Window: 5 * time.Second}, 10, 10},
		{"ratio only", retry.BudgetConfig{PerSecond: 1e-9, Ratio: 0.5}, 11, 5},
		{"ratio one", retry.BudgetConfig{PerSecond: 1e-9, Ratio: 1}, 7, 7},
		{"nothing", retry.BudgetConfig{PerSecond: 1e-9, Ratio: 1e-9}, 100, 0},
		{"fractions add up", retry.BudgetConfig{PerSecond: 0.05, Ratio: 0.1, Window: 10 * time.Second}, 15, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := mustBudget(t, tt.cfg)
				for range tt.requests {
					b.Request()
				}
				if got := withdrawAll(b); got != tt.want {
					t.Errorf("withdrawals allowed: got %d, want %d", got, tt.want)
				}
			})
		})
	}
}

func TestBudgetSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.BudgetConfig{PerSecond: 1, Ratio: 0.5, Window: 10 * time.Second})
		for range 20 {
			b.Request()
		}
		if got := withdrawAll(b); got != 20 { // 10 + 0.5·20
			t.Fatalf("at 0s: got %d withdrawals, want 20", got)
		}
		// 5s later the same window still holds everything: nothing left.
		time.Sleep(5 * time.Second)
		if b.Withdraw() {
			t.Fatalf("at 5s: got a withdrawal, want none (the window still holds 20)")
		}
		for range 4 {
			b.Request()
		}
		if got := withdrawAll(b); got != 2 {
			t.Fatalf("at 5s after 4 more requests: got %d withdrawals, want 2", got)
		}
		// At 10s the first bucket has slid out: its 20 requests and 20
		// withdrawals are forgotten; the 4 requests and 2 withdrawals of
		// 5s remain.
		time.Sleep(5 * time.Second)
		if got := withdrawAll(b); got != 10 { // 10 + 0.5·4 − 2
			t.Fatalf("at 10s: got %d withdrawals, want 10", got)
		}
		// A long idle period forgets everything.
		time.Sleep(time.Hour)
		if got := withdrawAll(b); got != 10 {
			t.Fatalf("after an hour: got %d withdrawals, want 10", got)
		}
	})
}

// TestBudgetConcurrent withdraws from many goroutines at once (the clock of
// the bubble stands still while they run): exactly the allowance succeeds.
func TestBudgetConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mp, r := newReader()
		b := mustBudget(t, retry.BudgetConfig{PerSecond: 3, Ratio: 0.25, Window: 10 * time.Second, Name: "shared", MeterProvider: mp})
		const goroutines, requests, tries = 8, 1000, 200
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range requests / goroutines {
					b.Request()
				}
			})
		}
		wg.Wait()
		var granted atomic.Int64
		for range goroutines {
			wg.Go(func() {
				for range tries {
					if b.Withdraw() {
						granted.Add(1)
					}
				}
			})
		}
		wg.Wait()
		want := int64(3*10 + 0.25*requests)
		if got := granted.Load(); got != want {
			t.Errorf("withdrawals granted: got %d, want %d", got, want)
		}
		refused := int64(goroutines*tries) - want
		if got := points(t, r, "bulwark.retry.budget.exhausted")["bulwark.key=shared"]; got != refused {
			t.Errorf("bulwark.retry.budget.exhausted: got %d, want %d", got, refused)
		}
	})
}

// TestBudgetConcurrentMixed mixes requests and withdrawals on the real
// clock, across bucket changes: never more than the allowance.
func TestBudgetConcurrentMixed(t *testing.T) {
	b := mustBudget(t, retry.BudgetConfig{PerSecond: 1e-9, Ratio: 0.5, Window: time.Hour})
	const goroutines, calls = 8, 2000
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls {
				b.Request()
				if b.Withdraw() {
					granted.Add(1)
				}
				if b.Withdraw() {
					granted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got, limit := granted.Load(), int64(goroutines*calls/2); got > limit || got < limit*9/10 {
		t.Errorf("withdrawals granted: got %d, want at most %d and close to it", got, limit)
	}
}

func TestBudgetNilIsUnlimited(t *testing.T) {
	var b *retry.Budget
	b.Request()
	for range 1000 {
		if !b.Withdraw() {
			t.Fatal("nil Budget: got a refusal, want every withdrawal allowed")
		}
	}
}

func TestBudgetAllocs(t *testing.T) {
	mp, _ := newReader()
	b := mustBudget(t, retry.BudgetConfig{MeterProvider: mp})
	if got := testing.AllocsPerRun(1000, func() {
		b.Request()
		b.Withdraw()
	}); got != 0 {
		t.Errorf("Request+Withdraw: got %v allocations, want 0", got)
	}
	for b.Withdraw() {
	}
	if got := testing.AllocsPerRun(1000, func() { b.Withdraw() }); got != 0 {
		t.Errorf("refused Withdraw: got %v allocations, want 0", got)
	}
}

// Calls that each record their request and then withdraw, from many
// goroutines, are never refused by a budget of one retry per request: a
// Withdraw must not judge fresh withdrawals against requests it read
// before them.
func TestBudgetNeverRefusesWhatItEarned(t *testing.T) {
	for range 20 {
		b := mustBudget(t, retry.BudgetConfig{Ratio: 1})
		var refused atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 500 {
					b.Request()
					if !b.Withdraw() {
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := refused.Load(); n != 0 {
			t.Fatalf("refused %d withdrawals, each earned by its own request", n)
		}
	}
}
