package breaker_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/breaker"
)

func TestBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  breaker.Config
		want []string // in the error
	}{
		{"NaN ratio", breaker.Config{FailureRatio: math.NaN()}, []string{"Config.FailureRatio", "NaN"}},
		{"negative ratio", breaker.Config{FailureRatio: -0.1}, []string{"Config.FailureRatio", "-0.1"}},
		{"ratio above 1", breaker.Config{FailureRatio: 1.5}, []string{"Config.FailureRatio", "1.5"}},
		{"infinite ratio", breaker.Config{FailureRatio: math.Inf(1)}, []string{"Config.FailureRatio"}},
		{"negative MinimumCalls", breaker.Config{MinimumCalls: -1}, []string{"Config.MinimumCalls", "-1"}},
		{"huge MinimumCalls", breaker.Config{MinimumCalls: math.MaxUint32 + 1}, []string{"Config.MinimumCalls"}},
		{"negative Window", breaker.Config{Window: -time.Second}, []string{"Config.Window", "-1s"}},
		{"negative BucketPeriod", breaker.Config{BucketPeriod: -time.Second}, []string{"Config.BucketPeriod", "-1s"}},
		{"Window shorter than BucketPeriod", breaker.Config{Window: time.Second, BucketPeriod: 2 * time.Second},
			[]string{"Config.Window", "Config.BucketPeriod", "1s", "2s"}},
		{"hairline BucketPeriod", breaker.Config{Window: time.Hour, BucketPeriod: time.Millisecond},
			[]string{"Config.BucketPeriod", "3600000 buckets"}},
		{"huge Window", breaker.Config{Window: 1 << 62, BucketPeriod: 1}, []string{"Config.BucketPeriod"}},
		{"default Window shorter than BucketPeriod", breaker.Config{BucketPeriod: time.Minute},
			[]string{"Config.Window", "Config.BucketPeriod", "30s", "1m0s"}},
		{"negative ConsecutiveFailures", breaker.Config{ConsecutiveFailures: -2}, []string{"Config.ConsecutiveFailures", "-2"}},
		{"negative OpenDuration", breaker.Config{OpenDuration: -1}, []string{"Config.OpenDuration"}},
		{"negative HalfOpenTrials", breaker.Config{HalfOpenTrials: -1}, []string{"Config.HalfOpenTrials"}},
		{"huge HalfOpenTrials", breaker.Config{HalfOpenTrials: math.MaxUint32 + 1}, []string{"Config.HalfOpenTrials"}},
		{"negative SlowCallThreshold", breaker.Config{SlowCallThreshold: -time.Millisecond}, []string{"Config.SlowCallThreshold"}},
		{"negative TrialTimeout", breaker.Config{TrialTimeout: -time.Second}, []string{"Config.TrialTimeout"}},
		{"negative MaxKeys", breaker.Config{MaxKeys: -1}, []string{"Config.MaxKeys", "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := breaker.New(tt.cfg)
			if err == nil {
				b.Close()
				t.Fatal("New: got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New: got %q, want it to contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "breaker: ") {
				t.Errorf("New: got %q, want the prefix %q", err, "breaker: ")
			}
			if s, err := breaker.NewSet(tt.cfg); err == nil {
				s.Close()
				t.Error("NewSet: got no error")
			}
		})
	}
}

func TestGoodConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  breaker.Config
	}{
		{"zero", breaker.Config{}},
		{"ratio 1", breaker.Config{FailureRatio: 1}},
		{"fixed window", breaker.Config{Window: time.Second, BucketPeriod: time.Second}},
		{"window too short to split", breaker.Config{Window: 5}},
		{"window not a multiple of the bucket", breaker.Config{Window: 10 * time.Second, BucketPeriod: 3 * time.Second}},
		{"one nanosecond open", breaker.Config{OpenDuration: 1}},
		{"everything set", breaker.Config{
			FailureRatio: 0.1, MinimumCalls: 100, Window: time.Minute, BucketPeriod: time.Second,
			ConsecutiveFailures: 5, OpenDuration: time.Second, HalfOpenTrials: 10,
			SlowCallThreshold: time.Second, TrialTimeout: time.Minute, MaxKeys: 10,
			OnStateChange: func(breaker.Event) {},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := breaker.New(tt.cfg)
			if err != nil {
				t.Fatalf("New: got %v, want no error", err)
			}
			b.Close()
			s, err := breaker.NewSet(tt.cfg)
			if err != nil {
				t.Fatalf("NewSet: got %v, want no error", err)
			}
			s.Close()
		})
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[breaker.State]string{
		breaker.Closed: "closed", breaker.HalfOpen: "half-open", breaker.Open: "open", 7: "state(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String(): got %q, want %q", s, got, want)
		}
	}
}
