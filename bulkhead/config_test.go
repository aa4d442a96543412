package bulkhead_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

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
