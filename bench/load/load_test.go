package load_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func mustNew(t *testing.T, cfg load.Config, fn load.Func) *load.Generator {
	t.Helper()
	g, err := load.New(cfg, fn)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestNewValidates(t *testing.T) {
	ok := func(context.Context, int) load.Outcome { return load.Success }
	tests := []struct {
		name string
		cfg  load.Config
		fn   load.Func
		want string
	}{
		{"zero rate", load.Config{Duration: time.Second}, ok, "Config.Rate is 0"},
		{"negative rate", load.Config{Rate: -1, Duration: time.Second}, ok, "Config.Rate is -1"},
		{"rate too high", load.Config{Rate: 1e6, Duration: time.Second}, ok, "Config.Rate is 1e+06"},
		{"zero duration", load.Config{Rate: 1}, ok, "Config.Duration is 0s"},
		{"negative deadline", load.Config{Rate: 1, Duration: time.Second, Deadline: -1}, ok, "Config.Deadline is -1ns"},
		{"negative in flight", load.Config{Rate: 1, Duration: time.Second, MaxInFlight: -2}, ok, "Config.MaxInFlight is -2"},
		{"nil func", load.Config{Rate: 1, Duration: time.Second}, nil, "nil Func"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load.New(tt.cfg, tt.fn)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// The fake clock of synctest makes the schedule exact: request i starts
// at i/Rate, whatever the machine is doing.
func TestRateIsExact(t *testing.T) {
	tests := []struct {
		rate     float64
		duration time.Duration
		want     int
	}{
		{1000, time.Second, 1000},
		{200, 5 * time.Second, 1000},
		{3, time.Second, 3},
		{7.5, 2 * time.Second, 15},
	}
	for _, tt := range tests {
		t.Run(time.Duration(float64(time.Second)/tt.rate).String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				var mu sync.Mutex
				sent := map[int]time.Duration{}
				g := mustNew(t, load.Config{Rate: tt.rate, Duration: tt.duration}, func(_ context.Context, seq int) load.Outcome {
					mu.Lock()
					sent[seq] = time.Since(start)
					mu.Unlock()
					return load.Success
				})
				res := g.Run(t.Context())
				if len(res.Records) != tt.want || res.Planned != tt.want {
					t.Fatalf("got %d records, %d planned, want %d", len(res.Records), res.Planned, tt.want)
				}
				interval := time.Duration(float64(time.Second) / tt.rate)
				for i, rec := range res.Records {
					want := time.Duration(i) * interval
					if d := rec.At - want; d < -time.Microsecond || d > time.Microsecond {
						t.Fatalf("record %d: got At %v, want %v", i, rec.At, want)
					}
					if d := sent[i] - want; d < -time.Microsecond || d > time.Microsecond {
						t.Fatalf("request %d: started at %v, want %v", i, sent[i], want)
					}
				}
				if res.Late != 0 {
					t.Errorf("got %d late, want 0", res.Late)
				}
			})
		})
	}
}

// A slow server does not slow the load: requests keep starting on time
// (open loop), and each is measured from its own start.
func TestOpenLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		started := map[int]time.Duration{}
		g := mustNew(t, load.Config{Rate: 100, Duration: time.Second}, func(_ context.Context, seq int) load.Outcome {
			mu.Lock()
			started[seq] = time.Since(start)
			mu.Unlock()
			if seq < 20 {
				time.Sleep(250 * time.Millisecond) // a stall 25 arrivals long
			}
			return load.Success
		})
		res := g.Run(t.Context())
		if len(res.Records) != 100 {
			t.Fatalf("got %d records, want 100", len(res.Records))
		}
		for i, rec := range res.Records {
			if want := time.Duration(i) * 10 * time.Millisecond; started[i] != want {
				t.Fatalf("request %d started at %v, want %v", i, started[i], want)
			}
			want := time.Duration(0)
			if i < 20 {
				want = 250 * time.Millisecond
			}
			if rec.Latency != want {
				t.Errorf("request %d: got latency %v, want %v", i, rec.Latency, want)
			}
		}
		if res.Workers < 20 {
			t.Errorf("got %d workers, want at least the 20 stalled requests", res.Workers)
		}
		if got := res.Latency.TotalCount(); got != 100 {
			t.Errorf("got %d in the merged histogram, want 100", got)
		}
		if got := load.Quantile(res.Latency, 0.99); got < 240*time.Millisecond || got > 260*time.Millisecond {
			t.Errorf("got p99 %v, want about 250ms", got)
		}
	})
}

// With its workers all busy the generator falls behind, and the latency
// still counts from when each request was meant to start: the queueing
// the generator caused is charged, not hidden.
func TestLatencyFromIntendedStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, load.Config{Rate: 100, Duration: 100 * time.Millisecond, MaxInFlight: 1}, func(context.Context, int) load.Outcome {
			time.Sleep(50 * time.Millisecond)
			return load.Success
		})
		res := g.Run(t.Context())
		if len(res.Records) != 10 {
			t.Fatalf("got %d records, want 10", len(res.Records))
		}
		for i, rec := range res.Records {
			// Request i starts when i-1 ends, at 50i ms, ends at 50(i+1)
			// ms, and was meant to start at 10i ms.
			want := time.Duration(40*i+50) * time.Millisecond
			if rec.Latency != want {
				t.Errorf("request %d: got latency %v, want %v", i, rec.Latency, want)
			}
		}
		if res.Late != 9 {
			t.Errorf("got %d late, want 9", res.Late)
		}
	})
}

func TestDeadlineCountsFromIntendedStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, load.Config{Rate: 10, Duration: time.Second, Deadline: 30 * time.Millisecond}, func(ctx context.Context, _ int) load.Outcome {
			<-ctx.Done()
			return load.Failure
		})
		res := g.Run(t.Context())
		offered, ok, fb, failed := res.Counts()
		if offered != 10 || ok != 0 || fb != 0 || failed != 10 {
			t.Fatalf("got offered %d, success %d, fallback %d, failure %d; want 10 failures", offered, ok, fb, failed)
		}
		for _, rec := range res.Records {
			if rec.Latency != 30*time.Millisecond || rec.Outcome != load.Failure {
				t.Errorf("got %v after %v, want a failure after 30ms", rec.Outcome, rec.Latency)
			}
		}
		if got := res.FailureLatency.TotalCount(); got != 10 {
			t.Errorf("got %d in the failure histogram, want 10", got)
		}
	})
}

// Stopping the run (Ctrl-C) stops the arrivals at once, ends the requests
// in flight, leaves them out, and keeps what was measured.
func TestInterrupt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(500*time.Millisecond+time.Microsecond, cancel)
		g := mustNew(t, load.Config{Rate: 100, Duration: 10 * time.Second}, func(ctx context.Context, seq int) load.Outcome {
			if seq%2 == 1 {
				<-ctx.Done() // in flight until the end
				return load.Failure
			}
			return load.Success
		})
		res := g.Run(ctx)
		if !res.Interrupted {
			t.Error("got Interrupted false, want true")
		}
		offered, ok, _, failed := res.Counts()
		if offered != 26 || ok != 26 || failed != 0 {
			t.Errorf("got offered %d, success %d, failure %d; want the 26 successes that ended", offered, ok, failed)
		}
		if res.Canceled != 25 {
			t.Errorf("got %d canceled, want the 25 cut short", res.Canceled)
		}
		if p := g.Progress(); p.Sent != 51 || p.InFlight != 0 {
			t.Errorf("got progress %+v, want 51 sent and none in flight", p)
		}
	})
}

func TestProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		g := mustNew(t, load.Config{Rate: 10, Duration: time.Second}, func(_ context.Context, seq int) load.Outcome {
			if seq == 0 {
				<-release
				return load.Fallback
			}
			return load.Failure
		})
		done := make(chan *load.Result)
		go func() { done <- g.Run(context.Background()) }()
		time.Sleep(550 * time.Millisecond)
		synctest.Wait()
		p := g.Progress()
		if p.Sent != 6 || p.InFlight != 1 || p.Failure != 5 || p.Fallback != 0 || p.Elapsed != 550*time.Millisecond {
			t.Errorf("got %+v, want 6 sent, 1 in flight, 5 failures after 550ms", p)
		}
		close(release)
		res := <-done
		if _, _, fb, failed := res.Counts(); fb != 1 || failed != 9 {
			t.Errorf("got %d fallbacks and %d failures, want 1 and 9", fb, failed)
		}
	})
}

func TestSeries(t *testing.T) {
	ms := time.Millisecond
	res := &load.Result{Records: []load.Record{
		{At: 0, Latency: 10 * ms, Outcome: load.Success},
		{At: 50 * ms, Latency: 30 * ms, Outcome: load.Failure},
		{At: 99 * ms, Latency: 20 * ms, Outcome: load.Fallback},
		{At: 250 * ms, Latency: 5 * ms, Outcome: load.Success},
	}}
	got := res.Series(100*ms, 400*ms)
	want := []load.Bucket{
		{Start: 0, Offered: 3, Success: 1, Fallback: 1, Failure: 1, P50: 20 * ms, P99: 30 * ms},
		{Start: 100 * ms},
		{Start: 200 * ms, Offered: 1, Success: 1, P50: 5 * ms, P99: 5 * ms},
		{Start: 300 * ms},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d buckets, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ds(5), 0.99, 5},
		{ds(3, 1, 2), 0.5, 2},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10},
		{ds(1, 2, 3, 4), 0, 1},
	}
	for _, tt := range tests {
		if got := load.Percentile(tt.in, tt.q); got != tt.want {
			t.Errorf("Percentile(%v, %v): got %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}
