package grpcclient

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/bulwarkrpc/bulwark"
)

// startSpan starts the span of attempt n of a call to method (a stream is
// one attempt). It is called only when the caller's context carries a
// recording span: a call that is not traced pays nothing.
func (ic *Interceptors) startSpan(ctx context.Context, method string, n int) (context.Context, trace.Span) {
	svc, m, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	attrs := make([]attribute.KeyValue, 0, 4)
	attrs = append(attrs,
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", svc),
		attribute.String("rpc.method", m))
	if n > 0 {
		attrs = append(attrs, attribute.Int("bulwark.attempt", n))
	}
	return ic.tracer.Start(ctx, "bulwark.grpc.attempt", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
}

// endSpan records how the attempt ended and ends its span; span may be
// nil.
func endSpan(span trace.Span, o bulwark.Outcome, err error) {
	if span == nil {
		return
	}
	code := codes.OK
	if err != nil {
		code, _ = codeOf(err)
		if code == codes.OK {
			code = codes.Unknown
		}
	}
	span.SetAttributes(
		attribute.Int("rpc.grpc.status_code", int(code)),
		attribute.String("bulwark.outcome", o.String()))
	if err != nil {
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		// A hedge cancelled because another attempt won is no error of
		// the call's.
		if o == bulwark.Failure || code != codes.Canceled {
			span.SetStatus(otelcodes.Error, code.String())
		}
	}
	span.End()
}
