package bulkhead_test

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

func adaptive(limit int, a bulkhead.AdaptiveConfig) bulkhead.Config {
	return bulkhead.Config{Limit: limit, Adaptive: &a}
}

func TestConfigInvalid(t *testing.T) {
	tests := []struct {
		name  string
		cfg   bulkhead.Config
		field string
	}{
		{"negative limit", bulkhead.Config{Limit: -1}, "Config.Limit is -1"},
		{"negative queue", bulkhead.Config{MaxQueue: -2}, "Config.MaxQueue is -2"},
		{"negative wait", bulkhead.Config{MaxQueue: 1, MaxWait: -time.Second}, "Config.MaxWait is -1s"},
		{"negative keys", bulkhead.Config{MaxKeys: -3}, "Config.MaxKeys is -3"},
		{"wait without queue", bulkhead.Config{MaxWait: time.Second}, "Config.MaxQueue is 0"},
		{"adaptive negative min", adaptive(8, bulkhead.AdaptiveConfig{MinLimit: -1}), "Config.Adaptive.MinLimit is -1"},
		{"adaptive min above limit", adaptive(8, bulkhead.AdaptiveConfig{MinLimit: 9}), "Config.Adaptive.MinLimit is 9, above Config.Limit (8"},
		{"adaptive min above default limit", adaptive(0, bulkhead.AdaptiveConfig{MinLimit: 65}), "Config.Adaptive.MinLimit is 65, above Config.Limit (64"},
		{"adaptive negative initial", adaptive(8, bulkhead.AdaptiveConfig{InitialLimit: -1}), "Config.Adaptive.InitialLimit is -1"},
		{"adaptive initial above limit", adaptive(8, bulkhead.AdaptiveConfig{InitialLimit: 9}), "Config.Adaptive.InitialLimit is 9, above Config.Limit"},
		{"adaptive initial below min", adaptive(8, bulkhead.AdaptiveConfig{MinLimit: 4, InitialLimit: 3}), "Config.Adaptive.InitialLimit is 3, below MinLimit (4)"},
		{"adaptive negative tolerance", adaptive(8, bulkhead.AdaptiveConfig{Tolerance: -1}), "Config.Adaptive.Tolerance is -1"},
		{"adaptive tolerance 1", adaptive(8, bulkhead.AdaptiveConfig{Tolerance: 1}), "Config.Adaptive.Tolerance is 1,"},
		{"adaptive tolerance below 1", adaptive(8, bulkhead.AdaptiveConfig{Tolerance: 0.5}), "Config.Adaptive.Tolerance is 0.5"},
		{"adaptive tolerance NaN", adaptive(8, bulkhead.AdaptiveConfig{Tolerance: math.NaN()}), "Config.Adaptive.Tolerance is NaN"},
		{"adaptive tolerance infinite", adaptive(8, bulkhead.AdaptiveConfig{Tolerance: math.Inf(1)}), "Config.Adaptive.Tolerance is +Inf"},
		{"adaptive negative backoff", adaptive(8, bulkhead.AdaptiveConfig{Backoff: -0.5}), "Config.Adaptive.Backoff is -0.5"},
		{"adaptive backoff 1", adaptive(8, bulkhead.AdaptiveConfig{Backoff: 1}), "Config.Adaptive.Backoff is 1,"},
		{"adaptive backoff NaN", adaptive(8, bulkhead.AdaptiveConfig{Backoff: math.NaN()}), "Config.Adaptive.Backoff is NaN"},
		{"adaptive negative window", adaptive(8, bulkhead.AdaptiveConfig{Window: -time.Millisecond}), "Config.Adaptive.Window is -1ms"},
		{"adaptive negative samples", adaptive(8, bulkhead.AdaptiveConfig{MinSamples: -1}), "Config.Adaptive.MinSamples is -1"},
		{"adaptive too many samples", adaptive(8, bulkhead.AdaptiveConfig{MinSamples: 4097}), "Config.Adaptive.MinSamples is 4097, want 0 to 4096"},
		{"adaptive negative probe interval", adaptive(8, bulkhead.AdaptiveConfig{ProbeInterval: -time.Second}), "Config.Adaptive.ProbeInterval is -1s"},
		{"adaptive and a bad fixed field", bulkhead.Config{Limit: -1, Adaptive: &bulkhead.AdaptiveConfig{}}, "Config.Limit is -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := bulkhead.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.HasPrefix(err.Error(), "bulkhead: ") {
				t.Errorf("New: got %v, want an error naming %q", err, tt.field)
			}
			if b != nil {
				t.Errorf("New: got %v, want a nil Bulkhead", b)
			}
			s, err := bulkhead.NewSet(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("NewSet: got %v, want an error naming %q", err, tt.field)
			}
			if s != nil {
				t.Errorf("NewSet: got %v, want a nil Set", s)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	b, err := bulkhead.New(bulkhead.Config{})
	if err != nil {
		t.Fatalf("New(zero Config): got %v, want nil", err)
	}
	if got := b.Limit(); got != 64 {
		t.Errorf("Limit: got %d, want 64", got)
	}
	s, err := bulkhead.NewSet(bulkhead.Config{})
	if err != nil {
		t.Fatalf("NewSet(zero Config): got %v, want nil", err)
	}
	if got := s.Limit(); got != 64 {
		t.Errorf("Set.Limit: got %d, want 64", got)
	}
	for i := range 2000 {
		p, err := s.Enter(t.Context(), "k"+strconv.Itoa(i))
		if err != nil {
			t.Fatalf("Enter: got %v, want nil", err)
		}
		p.Done(bulwark.Success)
	}
	if got := s.Len(); got != 1024 {
		t.Errorf("Set.Len after 2000 keys: got %d, want 1024 (the default MaxKeys)", got)
	}
}

func TestAdaptiveConfigDefaults(t *testing.T) {
	tests := []struct {
		name             string
		cfg              bulkhead.Config
		initial, ceiling int
	}{
		{"zero", adaptive(0, bulkhead.AdaptiveConfig{}), 16, 64},
		{"ceiling below 16", adaptive(8, bulkhead.AdaptiveConfig{}), 8, 8},
		{"min above 16", adaptive(0, bulkhead.AdaptiveConfig{MinLimit: 20}), 20, 64},
		{"initial set", adaptive(100, bulkhead.AdaptiveConfig{InitialLimit: 50}), 50, 100},
		{"min equal to ceiling", adaptive(4, bulkhead.AdaptiveConfig{MinLimit: 4}), 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mustNew(t, tt.cfg)
			if got := b.Limit(); got != tt.initial {
				t.Errorf("Limit: got %d, want %d", got, tt.initial)
			}
			s := mustNewSet(t, tt.cfg)
			if got := s.KeyLimit("k"); got != tt.initial {
				t.Errorf("Set.KeyLimit: got %d, want %d", got, tt.initial)
			}
			if got := s.Limit(); got != tt.ceiling {
				t.Errorf("Set.Limit: got %d, want %d (the ceiling)", got, tt.ceiling)
			}
			// The limit admits exactly its initial value.
			for range tt.initial {
				defer mustEnter(t, b, t.Context(), "").Done(bulwark.Ignored)
			}
			if _, err := b.Enter(t.Context(), ""); err == nil {
				t.Errorf("Enter beyond %d: got nil, want ErrFull", tt.initial)
			}
		})
	}
}

// TestAdaptiveConfigCopied: New copies the AdaptiveConfig, so that
// changing it afterwards changes nothing.
func TestAdaptiveConfigCopied(t *testing.T) {
	a := &bulkhead.AdaptiveConfig{InitialLimit: 2}
	b := mustNew(t, bulkhead.Config{Limit: 8, Adaptive: a})
	a.InitialLimit, a.MinLimit = 8, 8
	s := mustNewSet(t, bulkhead.Config{Limit: 8, Adaptive: a})
	a.InitialLimit = 5
	if got := b.Limit(); got != 2 {
		t.Errorf("Limit: got %d, want 2", got)
	}
	if got := s.KeyLimit("new"); got != 8 {
		t.Errorf("Set.KeyLimit: got %d, want 8", got)
	}
	mustEnter(t, s, t.Context(), "new").Done(bulwark.Ignored)
	if got := s.KeyLimit("new"); got != 8 {
		t.Errorf("KeyLimit after first use: got %d, want 8", got)
	}
}
