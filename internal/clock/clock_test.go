package clock

import (
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNowFollowsTheClock(t *testing.T) {
	for range 1000 {
		before := time.Now()
		got := Now()
		after := time.Now()
		if got.Before(before) || got.After(after) {
			t.Fatalf("Now() = %v, want within [%v, %v]", got, before, after)
		}
		// The wall reading too, with the monotonic one stripped.
		if w := got.Round(0); w.Before(before.Round(0).Add(-time.Millisecond)) || w.After(after.Round(0).Add(time.Millisecond)) {
			t.Fatalf("Now() wall reading %v, want within a millisecond of [%v, %v]", w, before.Round(0), after.Round(0))
		}
	}
}

func TestNowReanchors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := Now()
		a := anchor.Load()
		time.Sleep(reanchor + time.Millisecond)
		second := Now()
		if anchor.Load() == a {
			t.Fatal("the anchor was not read again after reanchor passed")
		}
		if d := second.Sub(first); d != reanchor+time.Millisecond {
			t.Fatalf("Now() advanced %v over a sleep of %v", d, reanchor+time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		if d := Now().Sub(second); d != 10*time.Millisecond {
			t.Fatalf("Now() advanced %v over a sleep of 10ms", d)
		}
	})
}

func BenchmarkNow(b *testing.B) {
	var sink time.Time
	b.Run("time.Now", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = time.Now()
		}
	})
	b.Run("clock.Now", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = Now()
		}
	})
	b.Run("clock.Now/par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var s time.Time
			for pb.Next() {
				s = Now()
			}
			_ = s
		})
	})
	_ = sink
}
