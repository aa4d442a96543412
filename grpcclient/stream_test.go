package grpcclient_test

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/timeout"
)

func guarded() grpcclient.Config {
	return grpcclient.Config{Breaker: &breaker.Config{MinimumCalls: 1000}, Bulkhead: &bulkhead.Config{Limit: 4}}
}

// held fails the test unless key holds n bulkhead slots.
func held(t *testing.T, ic *grpcclient.Interceptors, key string, n int) {
	t.Helper()
	if got := ic.Bulkheads().InFlight(key); got != n {
		t.Fatalf("%s holds %d slots, want %d", key, got, n)
	}
}

// counts fails the test unless key's breaker judged these outcomes.
func counts(t *testing.T, ic *grpcclient.Interceptors, key string, successes, failures, ignored uint32) {
	t.Helper()
	c := ic.Breakers().Counts(key)
	if c.Successes != successes || c.Failures != failures || c.Ignored != ignored {
		t.Fatalf("breaker of %s counts %+v, want %d successes, %d failures, %d ignored", key, c, successes, failures, ignored)
	}
}

func TestServerStreaming(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, guarded())
	stream, err := client.StreamingOutputCall(wait(t), &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	held(t, ic, outMethod, 1)
	var sizes []int
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(resp.GetPayload().GetBody()))
		held(t, ic, outMethod, 1) // the stream is not over before io.EOF
	}
	if len(sizes) != 3 || sizes[0] != 1 || sizes[2] != 3 {
		t.Fatalf("got sizes %v, want [1 2 3]", sizes)
	}
	held(t, ic, outMethod, 0)
	counts(t, ic, outMethod, 1, 0, 0)
}

func TestClientStreaming(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, guarded())
	stream, err := client.StreamingInputCall(wait(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{10, 20, 30} {
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatal(err)
		}
	}
	held(t, ic, inMethod, 1)
	resp, err := stream.CloseAndRecv()
	if err != nil || resp.GetAggregatedPayloadSize() != 60 {
		t.Fatalf("got %v, %v; want 60", resp, err)
	}
	// The reply of a client-streaming call ends it: no io.EOF to wait for.
	held(t, ic, inMethod, 0)
	counts(t, ic, inMethod, 1, 0, 0)
}

func TestBidiStreaming(t *testing.T) {
	srv := newServer(t, nil)
	client, ic := dial(t, srv.addr, guarded())
	stream, err := client.FullDuplexCall(wait(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "bb", "ccc"} {
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil || string(resp.GetPayload().GetBody()) != body {
			t.Fatalf("got %v, %v; want %q echoed", resp, err, body)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	held(t, ic, duplexMethod, 1) // closing the sending side does not end the stream
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	held(t, ic, duplexMethod, 0)
	counts(t, ic, duplexMethod, 1, 0, 0)
}

// A stream that ends with an error status releases its slot and reports
// its outcome by the status code.
func TestStreamErrorStatus(t *testing.T) {
	tests := []struct {
		code              codes.Code
		failures, ignored uint32
	}{
		{codes.Unavailable, 1, 0},
		{codes.Internal, 1, 0},
		{codes.InvalidArgument, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			srv := newServer(t, nil)
			client, ic := dial(t, srv.addr, guarded())
			stream, err := client.FullDuplexCall(wait(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(tt.code)}}); err != nil {
				t.Fatal(err)
			}
			_, err = stream.Recv()
			mustCode(t, err, tt.code)
			held(t, ic, duplexMethod, 0)
			counts(t, ic, duplexMethod, 0, tt.failures, tt.ignored)
		})
	}
}

// A stream the caller abandons — never read to its end — holds its slot
// until its context ends, and then gives it back; its end is the caller's
// doing, Ignored.
func TestAbandonedStreamIsReleasedWhenItsContextEnds(t *testing.T) {
	srv := newServer(t, nil)
	cfg := guarded()
	cfg.Bulkhead = &bulkhead.Config{Limit: 1, MaxQueue: 1}
	client, ic := dial(t, srv.addr, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	abandoned, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = abandoned // never read, never closed
	held(t, ic, duplexMethod, 1)

	// The next stream needs the only slot: it waits in the bulkhead's
	// queue until the first gives it back, or fails when its own context
	// ends.
	next := make(chan error, 1)
	go func() {
		s, err := client.FullDuplexCall(wait(t))
		if err == nil {
			_ = s.CloseSend()
			_, err = s.Recv()
		}
		next <- err
	}()
	cancel() // the caller gives up on the first stream: grpc-go ends it, and the slot is free
	if err := <-next; err != io.EOF {
		t.Fatalf("second stream: got %v, want io.EOF", err)
	}
	counts(t, ic, duplexMethod, 1, 0, 1)
	held(t, ic, duplexMethod, 0)
}

// A stream outliving StreamTimeout fails with DeadlineExceeded, matching
// timeout.ErrTimeout, and counts as a Failure.
func TestStreamTimeout(t *testing.T) {
	srv := newServer(t, &service{block: true})
	cfg := guarded()
	cfg.StreamTimeout = 50 * time.Millisecond
	client, ic := dial(t, srv.addr, cfg)
	stream, err := client.StreamingOutputCall(wait(t), &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	mustCode(t, err, codes.DeadlineExceeded)
	if !errors.Is(err, timeout.ErrTimeout) {
		t.Fatalf("got %v, want it to match timeout.ErrTimeout", err)
	}
	// grpc-go may hand Recv its error before its OnFinish callbacks, which
	// release the stream, have run on the goroutine that ended it.
	settled(t, func() bool {
		return ic.Bulkheads().InFlight(outMethod) == 0 && ic.Breakers().Counts(outMethod).Failures == 1
	})
	held(t, ic, outMethod, 0)
	counts(t, ic, outMethod, 0, 1, 0)
}

// settled waits, without sleeping and for 10s at most, until cond holds:
// for what another goroutine finishes a moment after the call under test
// returned.
func settled(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the condition did not hold within 10s")
		}
		runtime.Gosched()
	}
}

func TestStreamRefused(t *testing.T) {
	srv := newServer(t, nil)
	cfg := guarded()
	cfg.Bulkhead = &bulkhead.Config{Limit: 1}
	client, ic := dial(t, srv.addr, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := client.FullDuplexCall(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := client.FullDuplexCall(ctx)
	mustCode(t, err, codes.ResourceExhausted)
	if !errors.Is(err, bulkhead.ErrFull) {
		t.Fatalf("got %v, want it to match bulkhead.ErrFull", err)
	}
	counts(t, ic, duplexMethod, 0, 0, 1) // the breaker admitted it, the bulkhead did not: Ignored
}

// Closing the ClientConn ends its streams, and their slots are freed: a
// stream on another connection through the same Interceptors gets the one
// slot.
func TestClosingTheConnReleasesItsStreams(t *testing.T) {
	srv := newServer(t, nil)
	ic, err := grpcclient.New(grpcclient.Config{Bulkhead: &bulkhead.Config{Limit: 1, MaxQueue: 1}})
	if err != nil {
		t.Fatal(err)
	}
	first := dialWith(t, srv.addr, ic)
	second := testpb.NewTestServiceClient(dialWith(t, srv.addr, ic))
	if _, err := testpb.NewTestServiceClient(first).FullDuplexCall(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := make(chan error, 1)
	go func() {
		s, err := second.FullDuplexCall(wait(t))
		if err == nil {
			_ = s.CloseSend()
			_, err = s.Recv()
		}
		next <- err
	}()
	_ = first.Close()
	if err := <-next; err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

// A stream is judged by its start: after an outage, healthy streams that
// stay open close the breaker as soon as they answer (a half-open trial
// that waited for its stream's end would hold its slot for as long as the
// stream lives, and be given up as failed at TrialTimeout), while each
// holds its bulkhead slot until it ends.
func TestLongStreamsCloseTheBreakerWhenTheyAnswer(t *testing.T) {
	srv := newServer(t, &service{hold: true})
	client, ic := dial(t, srv.addr, grpcclient.Config{
		Breaker:  &breaker.Config{ConsecutiveFailures: 3, OpenDuration: 20 * time.Millisecond, HalfOpenTrials: 3, TrialTimeout: time.Hour},
		Bulkhead: &bulkhead.Config{Limit: 8},
	})
	ctx, cancel := context.WithCancel(wait(t))
	defer cancel() // ends the streams still open
	down := &testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Unavailable)}}
	for range 3 {
		st, err := client.StreamingOutputCall(ctx, down)
		if err == nil {
			_, err = st.Recv()
		}
		mustCode(t, err, codes.Unavailable)
	}
	up := &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}
	_, err := client.StreamingOutputCall(ctx, up)
	var open *breaker.OpenError
	if !errors.As(err, &open) {
		t.Fatalf("after three failed streams got %v, want the breaker open", err)
	}
	<-time.After(time.Until(open.RetryAt)) // the open period: then half-open
	for i := range 3 {
		st, err := client.StreamingOutputCall(ctx, up)
		if err != nil {
			t.Fatalf("trial stream %d: %v", i, err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("trial stream %d: first message: %v", i, err)
		}
	}
	if s := ic.Breakers().State(outMethod); s != breaker.Closed {
		t.Fatalf("with three healthy trial streams open and answered, the breaker is %v, want closed", s)
	}
	held(t, ic, outMethod, 3) // the streams still live
	st, err := client.StreamingOutputCall(ctx, up)
	if err != nil {
		t.Fatalf("a stream after the breaker closed: %v", err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	held(t, ic, outMethod, 4)
}

// The time a stream waits in the bulkhead's queue is not the endpoint's:
// a stream that queued longer than the breaker's slow-call threshold and
// then answered at once is a success.
func TestStreamQueueTimeIsNotSlowness(t *testing.T) {
	srv := newServer(t, nil)
	const slow = 50 * time.Millisecond
	client, ic := dial(t, srv.addr, grpcclient.Config{
		Breaker:  &breaker.Config{MinimumCalls: 1000, SlowCallThreshold: slow},
		Bulkhead: &bulkhead.Config{Limit: 1, MaxQueue: 1, MaxWait: 10 * time.Second},
	})
	first, err := client.FullDuplexCall(wait(t))
	if err != nil {
		t.Fatal(err)
	}
	ping := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}}
	if err := first.Send(ping); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil { // answered: judged at once
		t.Fatal(err)
	}
	type opened struct {
		s   testpb.TestService_FullDuplexCallClient
		err error
	}
	next := make(chan opened, 1)
	go func() {
		s, err := client.FullDuplexCall(wait(t))
		next <- opened{s, err}
	}()
	settled(t, func() bool { return ic.Bulkheads().Queued(duplexMethod) == 1 })
	<-time.After(2 * slow) // the queued stream waits past the threshold: the subject of the test
	if err := first.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != io.EOF {
		t.Fatalf("first stream: %v, want io.EOF", err)
	}
	o := <-next
	if o.err != nil {
		t.Fatal(o.err)
	}
	if err := o.s.Send(ping); err != nil {
		t.Fatal(err)
	}
	if _, err := o.s.Recv(); err != nil { // answers at once: judged here
		t.Fatal(err)
	}
	counts(t, ic, duplexMethod, 2, 0, 0)
	_ = o.s.CloseSend()
	if _, err := o.s.Recv(); err != io.EOF {
		t.Fatalf("second stream: %v, want io.EOF", err)
	}
}

// A Classifier that panics on a stream's end still lets the breaker know
// the stream is over (Ignored: its outcome is unknown), as it does the
// bulkhead, and the panic reaches the caller: a permit lost there would
// hold a half-open breaker's trial until its TrialTimeout.
func TestStreamClassifierPanicReleasesTheBreaker(t *testing.T) {
	srv := newServer(t, nil)
	cfg := guarded()
	cfg.Classify = func(ctx context.Context, err error) bulwark.Outcome {
		if status.Code(err) == codes.Internal {
			panic(errTest)
		}
		return grpcclient.Classify(ctx, err)
	}
	client, ic := dial(t, srv.addr, cfg)
	stream, err := client.FullDuplexCall(wait(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Internal)}}); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != errTest {
				t.Fatalf("recovered %v, want the Classifier's panic", r)
			}
		}()
		_, err := stream.Recv()
		t.Fatalf("Recv returned %v, want the Classifier's panic", err)
	}()
	held(t, ic, duplexMethod, 0)
	counts(t, ic, duplexMethod, 0, 0, 1)
}

// grpc-go allows one goroutine to send on a stream while another
// receives: the stream's guards follow, race-free, to the stream's end by
// StreamTimeout, which both see (Send as io.EOF or our deadline, Recv as
// our deadline), and its slot and its judgement are given back once.
func TestStreamSendAndRecvConcurrently(t *testing.T) {
	srv := newServer(t, nil)
	cfg := guarded()
	cfg.StreamTimeout = 100 * time.Millisecond
	client, ic := dial(t, srv.addr, cfg)
	stream, err := client.FullDuplexCall(wait(t))
	if err != nil {
		t.Fatal(err)
	}
	ping := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}}
	var sendErr, recvErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for sendErr == nil {
			sendErr = stream.Send(ping)
		}
	})
	wg.Go(func() {
		for recvErr == nil {
			_, recvErr = stream.Recv()
		}
	})
	wg.Go(func() { _, _ = stream.Header() })
	wg.Wait()
	if sendErr != io.EOF && (status.Code(sendErr) != codes.DeadlineExceeded || !errors.Is(sendErr, timeout.ErrTimeout)) {
		t.Errorf("Send: got %v, want io.EOF or our deadline", sendErr)
	}
	mustCode(t, recvErr, codes.DeadlineExceeded)
	if !errors.Is(recvErr, timeout.ErrTimeout) {
		t.Errorf("Recv: got %v, want our deadline", recvErr)
	}
	settled(t, func() bool { return ic.Bulkheads().InFlight(duplexMethod) == 0 })
	counts(t, ic, duplexMethod, 1, 0, 0) // judged by its first answer
}
