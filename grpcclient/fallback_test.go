package grpcclient_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

func withFallback(f *grpcclient.FallbackConfig) grpcclient.Config {
	return grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Fallback: f}}}
}

// A default reply answers failures of the endpoint, copied into the
// caller's own message; errors that are the caller's get no fallback.
func TestFallbackReply(t *testing.T) {
	def := &testpb.SimpleResponse{Username: "default"}
	srv := newServer(t, nil)
	client, _ := dial(t, srv.addr, withFallback(&grpcclient.FallbackConfig{Reply: def}))
	def.Username = "changed after New" // New copied it

	tests := []struct {
		code     codes.Code
		fallback bool
	}{
		{codes.Unavailable, true},
		{codes.Internal, true},
		{codes.InvalidArgument, false},
		{codes.NotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			var note fallback.Note
			resp, err := client.UnaryCall(fallback.WithNote(wait(t), &note), request("", tt.code))
			if !tt.fallback {
				mustCode(t, err, tt.code)
				if note.Source != fallback.SourceCall {
					t.Fatalf("got note %+v, want no fallback", note)
				}
				return
			}
			if err != nil || resp.GetUsername() != "default" {
				t.Fatalf("got %v, %v; want the default reply", resp, err)
			}
			if note.Source != fallback.SourceValue || status.Code(note.Err) != tt.code {
				t.Fatalf("got note %+v, want the value replacing %v", note, tt.code)
			}
			resp.Username = "mine now" // the caller owns its reply
		})
	}
	resp, err := client.UnaryCall(wait(t), request("", codes.Unavailable))
	if err != nil || resp.GetUsername() != "default" {
		t.Fatalf("got %v, %v; want the default reply, unchanged", resp, err)
	}
}

// A refusal — the breaker is open — is answered too: the call never left.
func TestFallbackOnRefusal(t *testing.T) {
	srv := newServer(t, nil)
	cfg := withFallback(&grpcclient.FallbackConfig{Reply: &testpb.SimpleResponse{Username: "default"}})
	cfg.Breaker = &breaker.Config{ConsecutiveFailures: 1, OpenDuration: time.Hour}
	client, _ := dial(t, srv.addr, cfg)
	if _, err := client.UnaryCall(wait(t), request("", codes.Unavailable)); err != nil {
		t.Fatal(err) // answered by the fallback, and opened the breaker
	}
	var note fallback.Note
	resp, err := client.UnaryCall(fallback.WithNote(wait(t), &note), request("", codes.OK))
	if err != nil || resp.GetUsername() != "default" || !errors.Is(note.Err, breaker.ErrOpen) {
		t.Fatalf("got %v, %v, note %+v; want the default in place of the refusal", resp, err, note)
	}
	if got := srv.calls.Load(); got != 1 {
		t.Fatalf("server saw %d calls, want 1", got)
	}
}

func TestFallbackFunc(t *testing.T) {
	srv := newServer(t, nil)
	client, _ := dial(t, srv.addr, withFallback(&grpcclient.FallbackConfig{
		Func: func(ctx context.Context, method string, req, reply proto.Message, err error) error {
			body := string(req.(*testpb.SimpleRequest).GetPayload().GetBody())
			if body == "decline" {
				return err
			}
			reply.(*testpb.SimpleResponse).Username = method + " " + body + " " + status.Code(err).String()
			return nil
		},
	}))
	resp, err := client.UnaryCall(wait(t), request("computed", codes.Unavailable))
	if want := unaryMethod + " computed Unavailable"; err != nil || resp.GetUsername() != want || resp.GetPayload() != nil {
		t.Fatalf("got %v, %v; want only %q", resp, err, want)
	}
	_, err = client.UnaryCall(wait(t), request("decline", codes.Unavailable))
	mustCode(t, err, codes.Unavailable)
}

// The cache answers a failure with the last good reply to the same
// request, copied both ways: neither the caller that stored it nor one
// that was served it can change what the cache holds.
func TestFallbackCache(t *testing.T) {
	var down atomic.Bool
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if down.Load() {
			return nil, status.Error(codes.Unavailable, "down")
		}
		return &testpb.SimpleResponse{Username: "fresh " + string(req.GetPayload().GetBody())}, nil
	}
	client, _ := dial(t, srv.addr, withFallback(&grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{}}))

	resp, err := client.UnaryCall(wait(t), request("a", codes.OK))
	if err != nil {
		t.Fatal(err)
	}
	resp.Username = "scribbled by the caller"

	down.Store(true)
	for range 2 {
		var note fallback.Note
		resp, err = client.UnaryCall(fallback.WithNote(wait(t), &note), request("a", codes.OK))
		if err != nil || resp.GetUsername() != "fresh a" || note.Source != fallback.SourceCacheStale {
			t.Fatalf("got %v, %v, note %+v; want the cached reply", resp, err, note)
		}
		resp.Username = "scribbled again"
	}
	// Another request has no cached reply.
	_, err = client.UnaryCall(wait(t), request("b", codes.OK))
	mustCode(t, err, codes.Unavailable)
}

// Within FreshFor, the cache answers without calling.
func TestFallbackCacheFresh(t *testing.T) {
	srv := newServer(t, nil)
	client, _ := dial(t, srv.addr, withFallback(&grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{FreshFor: time.Hour}}))
	for range 3 {
		resp, err := client.UnaryCall(wait(t), request("same", codes.OK))
		if err != nil || string(resp.GetPayload().GetBody()) != "same" {
			t.Fatalf("got %v, %v", resp, err)
		}
	}
	if got := srv.calls.Load(); got != 1 {
		t.Fatalf("server saw %d calls, want 1", got)
	}
}

// A Key returning "" opts a call out of the cache.
func TestFallbackCacheKey(t *testing.T) {
	srv := newServer(t, nil)
	client, _ := dial(t, srv.addr, withFallback(&grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{FreshFor: time.Hour,
		Key: func(method string, req proto.Message) string {
			if body := string(req.(*testpb.SimpleRequest).GetPayload().GetBody()); body != "private" {
				return body
			}
			return ""
		}}}))
	for range 2 {
		if _, err := client.UnaryCall(wait(t), request("private", codes.OK)); err != nil {
			t.Fatal(err)
		}
		if _, err := client.UnaryCall(wait(t), request("public", codes.OK)); err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.calls.Load(); got != 3 {
		t.Fatalf("server saw %d calls, want 3: the private request twice, the public one once", got)
	}
}

// A fallback for every method of a service answers a failure of our
// deadline, but never the caller's own deadline: nobody waits for it.
func TestFallbackForAServiceAndDeadlines(t *testing.T) {
	var slow atomic.Bool
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if slow.Load() {
			return blockUntilDone(ctx, req)
		}
		return echo(req)
	}
	client, _ := dial(t, srv.addr, grpcclient.Config{Methods: map[string]grpcclient.Method{
		"/" + testService + "/": {Fallback: &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{}}},
	}, AttemptTimeout: 50 * time.Millisecond})
	if _, err := client.UnaryCall(wait(t), request("cached", codes.OK)); err != nil {
		t.Fatal(err)
	}
	slow.Store(true)
	resp, err := client.UnaryCall(wait(t), request("cached", codes.OK))
	if err != nil || string(resp.GetPayload().GetBody()) != "cached" {
		t.Fatalf("got %v, %v; want the cached reply in place of our deadline", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = client.UnaryCall(ctx, request("cached", codes.OK))
	mustCode(t, err, codes.DeadlineExceeded)
}

// A hedged method with a cache: the winning hedge's reply is the one
// stored, and it answers when the method fails later.
func TestFallbackCacheWithHedge(t *testing.T) {
	var down atomic.Bool
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		switch {
		case down.Load():
			return nil, status.Error(codes.Unavailable, "down")
		case srv.calls.Load() == 1:
			return blockUntilDone(ctx, req)
		}
		return &testpb.SimpleResponse{Username: "from the hedge"}, nil
	}
	cfg := hedged(5 * time.Millisecond)
	cfg.Methods[unaryMethod] = grpcclient.Method{Hedge: cfg.Methods[unaryMethod].Hedge,
		Fallback: &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{}}}
	client, _ := dial(t, srv.addr, cfg)
	for _, d := range []bool{false, true} {
		down.Store(d)
		resp, err := client.UnaryCall(wait(t), request("q", codes.OK))
		if err != nil || resp.GetUsername() != "from the hedge" {
			t.Fatalf("down=%v: got %v, %v; want the hedge's reply", d, resp, err)
		}
	}
}

// A fallback's reply shares no memory with the caller's: bytes changed in
// place — in the reply a cache stored, in one it served fresh or in place
// of a failure, in the default given to New or one it answered with —
// change nothing that a later call gets.
func TestFallbackRepliesShareNoMemory(t *testing.T) {
	srv, down := switchable(t)
	tests := []struct {
		name string
		f    *grpcclient.FallbackConfig // nil: Reply, def
		want string
	}{
		{"stale cache", &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{}}, "stored"},
		{"fresh cache", &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{FreshFor: time.Hour}}, "stored"},
		{"default reply", nil, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte("default")}}
			f := tt.f
			if f == nil {
				f = &grpcclient.FallbackConfig{Reply: def}
			}
			down.Store(false)
			client, _ := dial(t, srv.addr, withFallback(f))
			resp, err := client.UnaryCall(wait(t), request("stored", codes.OK))
			if err != nil {
				t.Fatal(err)
			}
			resp.Payload.Body[0] = 'X'
			def.Payload.Body[0] = 'X'
			down.Store(true)
			for range 2 {
				resp, err := client.UnaryCall(wait(t), request("stored", codes.OK))
				if err != nil || string(resp.GetPayload().GetBody()) != tt.want {
					t.Fatalf("got %v, %v; want %q, untouched", resp, err, tt.want)
				}
				resp.Payload.Body[0] = 'Y'
			}
		})
	}
}
