package bulwark_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func TestClassifyError(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	to, _ := timeout.New(timeout.Config{Total: time.Nanosecond})
	oursFired, cancel3 := to.WithTotal(context.Background())
	defer cancel3()
	<-oursFired.Done()

	rejected := bulwark.RejectionError("guard: full")
	tests := []struct {
		name   string
		caller context.Context
		err    error
		want   bulwark.Outcome
	}{
		{"nil is success", live, nil, bulwark.Success},
		{"nil with caller gone is still success", cancelled, nil, bulwark.Success},
		{"refused connection", live, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, bulwark.Failure},
		{"reset", live, fmt.Errorf("read: %w", syscall.ECONNRESET), bulwark.Failure},
		{"unexpected EOF", live, io.ErrUnexpectedEOF, bulwark.Failure},
		{"our deadline, caller live", live, fmt.Errorf("get: %w", context.DeadlineExceeded), bulwark.Failure},
		{"timeout.Error", live, &timeout.Error{Scope: timeout.Attempt}, bulwark.Failure},
		{"cancelled by us (hedge loser), caller live", live, context.Canceled, bulwark.Ignored},
		{"caller cancelled", cancelled, context.Canceled, bulwark.Ignored},
		{"caller cancelled, transport error", cancelled, syscall.ECONNRESET, bulwark.Ignored},
		{"caller's own deadline", expired, context.DeadlineExceeded, bulwark.Ignored},
		{"a bulwark deadline, as ClassifyError alone sees it", oursFired, context.DeadlineExceeded, bulwark.Ignored},
		{"local rejection", live, rejected, bulwark.Ignored},
		{"wrapped local rejection", live, fmt.Errorf("call: %w", rejected), bulwark.Ignored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bulwark.ClassifyError(tt.caller, tt.err); got != tt.want {
				t.Fatalf("ClassifyError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassifyHTTPStatus(t *testing.T) {
	tests := []struct {
		code int
		want bulwark.Outcome
	}{
		{200, bulwark.Success}, {204, bulwark.Success}, {301, bulwark.Success}, {304, bulwark.Success},
		{400, bulwark.Ignored}, {401, bulwark.Ignored}, {404, bulwark.Ignored}, {409, bulwark.Ignored},
		{429, bulwark.Failure},
		{500, bulwark.Failure}, {501, bulwark.Ignored}, {502, bulwark.Failure}, {503, bulwark.Failure},
		{504, bulwark.Failure}, {599, bulwark.Failure},
	}
	for _, tt := range tests {
		if got := bulwark.ClassifyHTTPStatus(tt.code); got != tt.want {
			t.Errorf("ClassifyHTTPStatus(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestClassifyGRPCCode(t *testing.T) {
	failures := map[codes.Code]bool{
		codes.Unavailable: true, codes.DeadlineExceeded: true, codes.ResourceExhausted: true,
		codes.Internal: true, codes.Unknown: true,
	}
	// Every code grpc-go defines, by its own constants, so a renumbering would show.
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		want := bulwark.Ignored
		switch {
		case c == codes.OK:
			want = bulwark.Success
		case failures[c]:
			want = bulwark.Failure
		}
		if got := bulwark.ClassifyGRPCCode(uint32(status.Code(status.Error(c, "x")))); got != want {
			t.Errorf("ClassifyGRPCCode(%v) = %v, want %v", c, got, want)
		}
	}
}

func TestRejectionError(t *testing.T) {
	err := bulwark.RejectionError("guard: full")
	if !errors.Is(err, bulwark.ErrRejected) {
		t.Errorf("errors.Is(RejectionError, ErrRejected) = false, want true")
	}
	if err.Error() != "guard: full" {
		t.Errorf("Error() = %q, want %q", err.Error(), "guard: full")
	}
	if errors.Is(errors.New("guard: full"), bulwark.ErrRejected) {
		t.Errorf("a plain error matched ErrRejected")
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[bulwark.Outcome]string{
		bulwark.Success: "success", bulwark.Failure: "failure", bulwark.Ignored: "ignored", 7: "outcome(7)",
	} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", o, got, want)
		}
	}
}
