package guards_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/internal/guards"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBuild(t *testing.T) {
	s, err := guards.Build("x", &breaker.Config{}, &bulkhead.Config{Limit: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Guards) != 2 || s.Guards[0] != s.Breakers || s.Guards[1] != s.Bulkheads || len(s.Closers) != 2 {
		t.Fatalf("got %+v, want the breaker then the bulkhead", s)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := guards.Build("x", nil, nil, nil); err != nil || len(s.Guards) != 0 {
		t.Fatalf("nothing configured: got %+v, %v", s, err)
	}
	for _, tt := range []struct {
		brk  *breaker.Config
		blk  *bulkhead.Config
		want string
	}{
		{&breaker.Config{FailureRatio: 2}, nil, "x: Config.Breaker: breaker: Config.FailureRatio"},
		{&breaker.Config{}, &bulkhead.Config{Limit: -1}, "x: Config.Bulkhead: bulkhead: Config.Limit"},
	} {
		if _, err := guards.Build("x", tt.brk, tt.blk, nil); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("got %v, want an error starting %q", err, tt.want)
		}
	}
}

func TestErrorType(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("get: %w", breaker.ErrOpen): "breaker_open",
		bulkhead.ErrFull:                       "bulkhead_full",
		bulwark.ErrNoEndpoint:                  "no_endpoint",
		&timeout.Error{Scope: timeout.Attempt}: "timeout",
		context.Canceled:                       "canceled",
		context.DeadlineExceeded:               "deadline_exceeded",
		errors.New("connection refused"):       "",
	} {
		if got := guards.ErrorType(err); got != want {
			t.Errorf("ErrorType(%v) = %q, want %q", err, got, want)
		}
	}
}
