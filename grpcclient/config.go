package grpcclient

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

// Config configures the Interceptors. The zero Config is valid and adds
// nothing but the bookkeeping: every policy is off until set. Standard
// returns the recommended one.
type Config struct {
	// AttemptTimeout bounds each unary call the interceptor passes on —
	// each hedged attempt on its own — as a deadline on its context,
	// which gRPC sends to the server (grpc-timeout): the server stops
	// working for a caller that stopped waiting. It is never later than
	// the caller's own deadline. grpc-go's retries of the call (see
	// ServiceConfig) happen within it. Zero means none of ours.
	AttemptTimeout time.Duration
	// TotalTimeout bounds a whole unary call, every hedged attempt
	// included. Zero means none of ours; when both are set, it must not be
	// shorter than AttemptTimeout.
	TotalTimeout time.Duration
	// StreamTimeout bounds the whole life of a stream, sent to the server
	// like AttemptTimeout. Most streams live as long as their caller
	// wants; bound those by the caller's context. Zero means none of ours.
	StreamTimeout time.Duration
	// Breaker is the configuration of one circuit breaker per key (per
	// method by default, see Key). Nil means no breaker.
	Breaker *breaker.Config
	// Bulkhead is the configuration of one concurrency limit per key. A
	// stream holds its slot until it ends. Nil means no bulkhead.
	Bulkhead *bulkhead.Config
	// Budget bounds hedged attempts across calls; share one with the other
	// clients (gRPC or HTTP) of the same dependency. (grpc-go's retries
	// have their own budget: ServiceConfig.RetryThrottling.) Nil means a
	// Budget of these Interceptors' own, with retry.BudgetConfig's
	// defaults, made when a method hedges.
	Budget *retry.Budget
	// Key names what the breaker and the bulkhead keep their state per.
	// It must be safe for concurrent use and return few distinct keys (the
	// sets are bounded by their MaxKeys). Nil means the full method name,
	// such as "/grpc.testing.TestService/UnaryCall": the sets belong to
	// the Interceptors, and DialOptions makes new Interceptors for each
	// ClientConn, so that amounts to one breaker per target and method.
	// Interceptors shared by ClientConns to several targets want
	// func(cc *grpc.ClientConn, m string) string { return cc.Target() + m }.
	Key func(cc *grpc.ClientConn, method string) string
	// Classify maps the error of a call to its Outcome, for the breaker
	// and for the fallbacks' default rule. Nil means Classify: Unavailable,
	// DeadlineExceeded (ours), ResourceExhausted, Internal and Unknown are
	// Failures; the caller's own cancellation and deadline are Ignored.
	// ClassifyCodes builds one with another mapping of status codes.
	Classify bulwark.Classifier
	// Methods configures hedging and fallback per method, keyed by the
	// full method name ("/grpc.testing.TestService/UnaryCall") or by a
	// service followed by a slash ("/grpc.testing.TestService/") for
	// every method of that service; the full name wins. Both apply to
	// unary calls only. Nil means none.
	Methods map[string]Method
	// ServiceConfig is grpc-go's service config, added by DialOptions
	// with grpc.WithDefaultServiceConfig: its retries, their throttling,
	// per-method deadlines. A service config from the name resolver
	// replaces it unless the ClientConn is given
	// grpc.WithDisableServiceConfig. Nil means none.
	ServiceConfig *ServiceConfig
	// MeterProvider receives the policies' metrics, where their own Config
	// names none. Nil means the global provider.
	MeterProvider metric.MeterProvider
	// TracerProvider makes the per-attempt spans. Nil means the global
	// provider.
	TracerProvider trace.TracerProvider
}

// Method configures the unary calls of one method, or of every method of
// a service. The zero Method adds nothing.
type Method struct {
	// Hedge sends another attempt of a call that has not answered after a
	// delay, and takes the first answer; each attempt decodes into a reply
	// of its own, the loser is cancelled and never counts as a failure.
	// Hedging a method declares it safe to repeat. Its Budget, when nil, is
	// Config.Budget. A reply that is not a proto.Message is never hedged.
	// Nil means no hedging.
	Hedge *hedge.Config
	// Fallback answers a call that failed. Nil means none.
	Fallback *FallbackConfig
}

// FallbackConfig configures the answer to a unary call that failed: set
// exactly one of Reply, Func and Cache. The answer is copied into the
// caller's reply message, and the call returns a nil error. A caller that
// wants to know gives its context a fallback.Note (fallback.WithNote).
type FallbackConfig struct {
	// Reply is the default reply. It is copied when the Interceptors are
	// made and into each caller's reply, so it is never shared. For a full
	// method name it must be of the method's reply type when the method is
	// registered (protoregistry.GlobalFiles). It must not be a nil pointer:
	// an empty reply is a pointer to the message's zero value.
	Reply proto.Message
	// Func fills in reply, reset beforehand, as the answer to the call
	// that failed with err, and returns nil; or it declines by returning
	// an error (err itself, or one that wraps it), which the caller gets.
	// It runs on the caller's goroutine, with the caller's live context.
	Func func(ctx context.Context, method string, req, reply proto.Message, err error) error
	// Cache answers with the last good reply to the same request.
	Cache *CacheConfig
	// When decides whether a failed call is answered; it is never asked
	// about a caller whose own context ended. Nil means
	// fallback.DefaultFor(Config.Classify): a Failure of the endpoint, a
	// local refusal (open breaker, full bulkhead) or a deadline of ours.
	When func(ctx context.Context, err error) bool
}

// CacheConfig configures the cache of last good replies. The zero
// CacheConfig is valid: up to 10,000 replies, each served for 5 minutes
// after it was stored in place of a failure.
type CacheConfig struct {
	// FreshFor is how long after it was stored a reply answers the call
	// without running it. Zero means never: the call always runs.
	FreshFor time.Duration
	// MaxStale is how old a reply may be and still be served in place of
	// a failure. It must not be shorter than FreshFor. Zero means FreshFor
	// plus 5 minutes.
	MaxStale time.Duration
	// MaxEntries bounds the number of replies held. Zero means 10,000.
	MaxEntries int
	// MaxBytes bounds the sum of the replies' encoded sizes. Zero means
	// no bound.
	MaxBytes int64
	// Key identifies the request a reply answers; "" opts a call out of
	// the cache. It must be safe for concurrent use. Nil means the method
	// and the request's deterministic encoding: requests that carry a
	// user's identity want a Key that includes it, or none.
	Key func(method string, req proto.Message) string
}

// Standard returns the recommended Config, every default in one place:
//
//   - AttemptTimeout 10s and TotalTimeout 30s for unary calls, sent to the
//     server; streams bounded by their caller only;
//   - Breaker per method: opens when at least half of 20 or more calls in
//     30s fail, stays open 5s, then lets 3 trial calls through;
//   - Bulkhead per method: 256 calls or streams at once, the rest refused
//     at once (ResourceExhausted, never counted against the method);
//   - ServiceConfig: grpc-go's retry throttling of 10 tokens and 0.1 per
//     success, and no retry policy: add one to the MethodConfig of the
//     methods that are safe to repeat (until then the throttle, which
//     would do nothing, is left out of the service config);
//   - no hedging and no fallback: set them per method in Methods; hedges
//     draw on a Budget of 20 % of calls plus 10 per second.
//
// Each call returns a new Config, whose sections the caller may change.
func Standard() Config {
	return Config{
		AttemptTimeout: 10 * time.Second,
		TotalTimeout:   30 * time.Second,
		Breaker:        &breaker.Config{},
		Bulkhead:       &bulkhead.Config{Limit: 256},
		ServiceConfig:  &ServiceConfig{RetryThrottling: &RetryThrottling{}},
	}
}

func (c Config) validate() error {
	switch {
	case c.AttemptTimeout < 0:
		return fmt.Errorf("grpcclient: Config.AttemptTimeout is %v, want >= 0", c.AttemptTimeout)
	case c.TotalTimeout < 0:
		return fmt.Errorf("grpcclient: Config.TotalTimeout is %v, want >= 0", c.TotalTimeout)
	case c.TotalTimeout > 0 && c.AttemptTimeout > c.TotalTimeout:
		return fmt.Errorf("grpcclient: Config.AttemptTimeout (%v) exceeds Config.TotalTimeout (%v)", c.AttemptTimeout, c.TotalTimeout)
	case c.StreamTimeout < 0:
		return fmt.Errorf("grpcclient: Config.StreamTimeout is %v, want >= 0", c.StreamTimeout)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Methods)) { // the same error for the same Config
		m := c.Methods[name]
		field := fmt.Sprintf("Config.Methods[%q]", name)
		if err := validMethodKey(name); err != nil {
			return fmt.Errorf("grpcclient: %s: %w", field, err)
		}
		if f := m.Fallback; f != nil {
			if err := f.validate(field+".Fallback", name); err != nil {
				return err
			}
		}
	}
	return nil
}

// validMethodKey checks a key of Config.Methods: "/service/method" or
// "/service/".
func validMethodKey(k string) error {
	svc, m, ok := strings.Cut(strings.TrimPrefix(k, "/"), "/")
	if !strings.HasPrefix(k, "/") || !ok || svc == "" || strings.Contains(m, "/") {
		return fmt.Errorf("want a full method name such as %q, or a service such as %q", "/grpc.testing.TestService/UnaryCall", "/grpc.testing.TestService/")
	}
	return nil
}

func (f *FallbackConfig) validate(field, method string) error {
	set := 0
	for _, b := range []bool{f.Reply != nil, f.Func != nil, f.Cache != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return fmt.Errorf("grpcclient: %s sets %d of Reply, Func and Cache, want exactly one", field, set)
	}
	if f.Reply == nil {
		return nil
	}
	if !f.Reply.ProtoReflect().IsValid() {
		// A nil pointer would answer every failure with an empty reply:
		// a default never built, most likely. An empty reply is &T{}.
		return fmt.Errorf("grpcclient: %s.Reply is a nil %T, want a message (for an empty one, a pointer to its zero value)", field, f.Reply)
	}
	if want, ok := replyType(method); ok {
		if got := f.Reply.ProtoReflect().Descriptor().FullName(); got != want {
			return fmt.Errorf("grpcclient: %s.Reply is a %s, want %s, the reply of %s", field, got, want, method)
		}
	}
	return nil
}

// replyType returns the name of the reply message of a full method name,
// when the method's service is registered.
func replyType(method string) (protoreflect.FullName, bool) {
	svc, m, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if m == "" {
		return "", false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return "", false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return "", false
	}
	md := sd.Methods().ByName(protoreflect.Name(m))
	if md == nil {
		return "", false
	}
	return md.Output().FullName(), true
}
