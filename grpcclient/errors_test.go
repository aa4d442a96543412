package grpcclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		caller context.Context
		err    error
		want   bulwark.Outcome
	}{
		{"nil", live, nil, bulwark.Success},
		{"unavailable", live, status.Error(codes.Unavailable, ""), bulwark.Failure},
		{"internal", live, status.Error(codes.Internal, ""), bulwark.Failure},
		{"unknown", live, status.Error(codes.Unknown, ""), bulwark.Failure},
		{"resource exhausted", live, status.Error(codes.ResourceExhausted, ""), bulwark.Failure},
		{"deadline exceeded", live, status.Error(codes.DeadlineExceeded, ""), bulwark.Failure},
		{"invalid argument", live, status.Error(codes.InvalidArgument, ""), bulwark.Ignored},
		{"not found", live, status.Error(codes.NotFound, ""), bulwark.Ignored},
		{"canceled (a lost hedge)", live, status.Error(codes.Canceled, ""), bulwark.Ignored},
		{"wrapped status", live, fmt.Errorf("calling: %w", status.Error(codes.Unavailable, "")), bulwark.Failure},
		{"caller gone", gone, status.Error(codes.Unavailable, ""), bulwark.Ignored},
		{"caller's deadline", gone, status.Error(codes.DeadlineExceeded, ""), bulwark.Ignored},
		{"breaker open", live, breaker.ErrOpen, bulwark.Ignored},
		{"bulkhead full", live, bulkhead.ErrFull, bulwark.Ignored},
		{"plain error", live, io.ErrUnexpectedEOF, bulwark.Failure},
		{"plain cancel", live, context.Canceled, bulwark.Ignored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := grpcclient.Classify(tt.caller, tt.err); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClassifyCodes(t *testing.T) {
	notFoundFails := grpcclient.ClassifyCodes(func(c codes.Code) bulwark.Outcome {
		if c == codes.NotFound {
			return bulwark.Failure
		}
		return bulwark.ClassifyGRPCCode(uint32(c))
	})
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		caller context.Context
		err    error
		want   bulwark.Outcome
	}{
		{"not found", context.Background(), status.Error(codes.NotFound, ""), bulwark.Failure},
		{"unavailable", context.Background(), status.Error(codes.Unavailable, ""), bulwark.Failure},
		{"invalid argument", context.Background(), status.Error(codes.InvalidArgument, ""), bulwark.Ignored},
		{"caller gone", gone, status.Error(codes.NotFound, ""), bulwark.Ignored},
		{"refusal", context.Background(), breaker.ErrOpen, bulwark.Ignored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notFoundFails(tt.caller, tt.err); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if got := grpcclient.ClassifyCodes(nil)(context.Background(), status.Error(codes.NotFound, "")); got != bulwark.Ignored {
		t.Fatalf("ClassifyCodes(nil): got %v, want Classify's Ignored", got)
	}
}

// A configured Classifier decides what the breaker counts.
func TestConfiguredClassifier(t *testing.T) {
	srv := newServer(t, nil)
	client, _ := dial(t, srv.addr, grpcclient.Config{
		Breaker: &breaker.Config{ConsecutiveFailures: 2},
		Classify: grpcclient.ClassifyCodes(func(c codes.Code) bulwark.Outcome {
			if c == codes.NotFound {
				return bulwark.Failure
			}
			return bulwark.ClassifyGRPCCode(uint32(c))
		}),
	})
	for range 2 {
		_, err := client.UnaryCall(wait(t), request("", codes.NotFound))
		mustCode(t, err, codes.NotFound)
	}
	_, err := client.UnaryCall(wait(t), request("", codes.OK))
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("got %v, want the breaker open after two NotFound", err)
	}
	if st, ok := status.FromError(err); !ok || st.Code() != codes.Unavailable {
		t.Fatalf("status.FromError: got %v, %v; want Unavailable", st, ok)
	}
}
