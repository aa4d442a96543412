package grpcclient

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

// Every refusal Stack.EnterBy can return becomes an error carrying its
// gRPC status and matching its cause. (Internal: a balancer's
// ErrNoEndpoint cannot be produced through Config.)
func TestRefused(t *testing.T) {
	custom := bulwark.RejectionError("limiter: shed")
	tests := []struct {
		name  string
		err   error
		code  codes.Code
		match []error
	}{
		{"breaker open", &breaker.OpenError{Key: "k"}, codes.Unavailable, []error{breaker.ErrOpen, bulwark.ErrRejected}},
		{"bulkhead full", &bulkhead.FullError{Key: "k"}, codes.ResourceExhausted, []error{bulkhead.ErrFull, bulwark.ErrRejected}},
		{"no endpoint", bulwark.ErrNoEndpoint, codes.Unavailable, []error{bulwark.ErrNoEndpoint, bulwark.ErrRejected}},
		{"another guard's refusal", custom, codes.Unavailable, []error{custom, bulwark.ErrRejected}},
		{"caller cancelled", context.Canceled, codes.Canceled, []error{context.Canceled}},
		{"caller's deadline", context.DeadlineExceeded, codes.DeadlineExceeded, []error{context.DeadlineExceeded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r rejections
			got := r.refused(tt.err)
			if c := status.Code(got); c != tt.code {
				t.Errorf("got code %v, want %v", c, tt.code)
			}
			for _, m := range tt.match {
				if !errors.Is(got, m) {
					t.Errorf("got %v, want it to match %v", got, m)
				}
			}
			if got.Error() != tt.err.Error() {
				t.Errorf("got text %q, want the cause's %q", got.Error(), tt.err.Error())
			}
		})
	}
	t.Run("the same refusal twice", func(t *testing.T) {
		var r rejections
		open := &breaker.OpenError{Key: "k"}
		if a, b := r.refused(open), r.refused(open); a != b {
			t.Error("got two errors for one refusal, want the first reused")
		}
		if a, b := r.refused(custom), r.refused(custom); a == b {
			t.Error("a refusal of unknown type was cached")
		}
	})
}
