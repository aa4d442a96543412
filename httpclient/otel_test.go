package httpclient_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/bulwarkrpc/bulwark/httpclient"
	"github.com/bulwarkrpc/bulwark/retry"
)

// With otelhttp inside (as next), every attempt gets bulwark's span and,
// under it, otelhttp's client span; the retry's span carries
// http.request.resend_count; bulwark's spans record no path, query or
// header value.
func TestAttemptSpansWithOtelhttp(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	base := srv.Client().Transport
	tr, err := httpclient.New(otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp)), httpclient.Config{
		TracerProvider: tp, Retry: &retry.Config{Backoff: retry.Constant(time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	defer tr.CloseIdleConnections()

	ctx, parent := tp.Tracer("test").Start(context.Background(), "caller")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/secret/path?token=hunter2", nil)
	req.Header.Set("Authorization", "Bearer hunter2")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	parent.End()

	var attempts []sdktrace.ReadOnlySpan
	inner := 0
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			// otelhttp's own span records url.full: that is otelhttp's
			// choice; bulwark's spans record neither path nor query.
			if v := kv.Value.Emit(); s.Name() == "bulwark.http.attempt" && (strings.Contains(v, "hunter2") || strings.Contains(v, "/secret")) {
				t.Errorf("span %q records %s=%q", s.Name(), kv.Key, v)
			}
		}
		switch {
		case s.Name() == "bulwark.http.attempt":
			attempts = append(attempts, s)
		case s.Name() != "caller":
			inner++
		}
	}
	if len(attempts) != 2 || inner != 2 {
		t.Fatalf("got %d bulwark attempt spans and %d otelhttp spans, want 2 and 2", len(attempts), inner)
	}
	want := map[string]string{"bulwark.outcome": "", "http.response.status_code": ""}
	for i, s := range attempts {
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			got[kv.Key] = kv.Value
		}
		for k := range want {
			if _, ok := got[attribute.Key(k)]; !ok {
				t.Errorf("attempt span %d lacks %s", i, k)
			}
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("attempt span %d is not a child of the caller's span", i)
		}
	}
	// The second attempt is the resend.
	var resend int64 = -1
	for _, kv := range attempts[1].Attributes() {
		if kv.Key == "http.request.resend_count" {
			resend = kv.Value.AsInt64()
		}
	}
	if resend != 1 {
		t.Errorf("the retry's span has http.request.resend_count %d, want 1", resend)
	}
}
