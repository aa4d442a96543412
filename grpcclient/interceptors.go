package grpcclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/internal/guards"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

// Interceptors run gRPC calls through bulwark's policies: a unary and a
// stream client interceptor, each built on a bulwark.Stack (the two share
// the breakers and bulkheads, and differ in their deadlines), and the
// service config of grpc-go's own retries. They are safe for concurrent use and
// may serve several ClientConns (see Config.Key). Build them with New, or
// let DialOptions build them.
type Interceptors struct {
	key           func(*grpc.ClientConn, string) string
	classify      bulwark.Classifier
	unary         *bulwark.Stack     // every unary call; a hedged one through its policy's Hedge
	totalBinds    bool               // a call of one attempt has a total deadline that its attempt deadline does not preempt, or that bounds a queue
	streams       *bulwark.Stack     // every stream, for its whole life: the bulkhead and StreamTimeout
	streamJudge   *bulwark.Stack     // every stream, until its first answer: the breaker; nil without one
	methods       map[string]*policy // nil without Config.Methods
	services      bool               // methods has keys for a whole service
	tracer        trace.Tracer
	serviceConfig string // "" without Config.ServiceConfig
	maxAttempts   int    // the largest RetryPolicy.MaxAttempts
	closers       []interface{ Close() error }
	breakers      *breaker.Set  // nil without Config.Breaker
	bulkheads     *bulkhead.Set // nil without Config.Bulkhead
	rej           rejections
}

// policy is what Config.Methods configures for a method.
type policy struct {
	hedge    *hedge.Hedge                    // nil: not hedged
	fallback bulwark.Fallback[proto.Message] // nil: none
	cacheKey func(string, proto.Message) string
	cache    bool // fallback is a cache: successes are stored
	fn       bool // fallback is a Func: it needs the call
}

// New validates cfg and returns its Interceptors. An invalid field — here,
// in a policy's section or in the service config — is an error naming it.
func New(cfg Config) (*Interceptors, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The total deadline of a call of one attempt binds when no attempt
	// deadline preempts it, or when the bulkhead's queue may make the
	// attempt wait before its attempt deadline starts.
	queues := cfg.Bulkhead != nil && cfg.Bulkhead.MaxQueue > 0
	ic := &Interceptors{key: cfg.Key, classify: cfg.Classify, totalBinds: cfg.TotalTimeout > 0 && (cfg.AttemptTimeout == 0 || queues)}
	if ic.classify == nil {
		ic.classify = Classify
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	ic.tracer = tp.Tracer("github.com/bulwarkrpc/bulwark/grpcclient")
	mp := cfg.MeterProvider
	if sc := cfg.ServiceConfig; sc != nil {
		doc, maxAttempts, err := sc.document("Config.ServiceConfig")
		if err != nil {
			return nil, err
		}
		if maxAttempts == 0 {
			// grpc-go throttles retries alone: with no retry policy the
			// throttle would do nothing but take its lock on every call.
			doc.RetryThrottling = nil
		}
		if doc.LoadBalancingConfig != nil || doc.MethodConfig != nil || doc.RetryThrottling != nil {
			js, err := jsonOf(doc)
			if err != nil {
				return nil, err
			}
			ic.serviceConfig, ic.maxAttempts = js, maxAttempts
		}
	}
	ok := false
	defer func() {
		if !ok {
			_ = ic.Close()
		}
	}()
	gs, err := guards.Build("grpcclient", cfg.Breaker, cfg.Bulkhead, mp)
	if err != nil {
		return nil, err
	}
	ic.closers = append(ic.closers, gs.Closers...)
	ic.breakers, ic.bulkheads = gs.Breakers, gs.Bulkheads
	var unaryTimeout, streamTimeout *timeout.Timeout
	if cfg.TotalTimeout > 0 || cfg.AttemptTimeout > 0 {
		if unaryTimeout, err = timeout.New(timeout.Config{Total: cfg.TotalTimeout, Attempt: cfg.AttemptTimeout, MeterProvider: mp}); err != nil {
			return nil, fmt.Errorf("grpcclient: %w", err)
		}
	}
	if cfg.StreamTimeout > 0 {
		if streamTimeout, err = timeout.New(timeout.Config{Attempt: cfg.StreamTimeout, MeterProvider: mp}); err != nil {
			return nil, fmt.Errorf("grpcclient: %w", err)
		}
	}
	if ic.unary, err = bulwark.New(bulwark.Config{Timeout: unaryTimeout, Guards: gs.Guards, Classify: ic.classify}); err != nil {
		return nil, fmt.Errorf("grpcclient: %w", err)
	}
	// A stream is judged by its start: the breaker learns whether it
	// answered, the bulkhead holds a slot for as long as it lives.
	var held []bulwark.Guard
	if gs.Bulkheads != nil {
		held = append(held, gs.Bulkheads)
	}
	if ic.streams, err = bulwark.New(bulwark.Config{Timeout: streamTimeout, Guards: held, Classify: ic.classify}); err != nil {
		return nil, fmt.Errorf("grpcclient: %w", err)
	}
	if gs.Breakers != nil {
		if ic.streamJudge, err = bulwark.New(bulwark.Config{Guards: []bulwark.Guard{gs.Breakers}, Classify: ic.classify}); err != nil {
			return nil, fmt.Errorf("grpcclient: %w", err)
		}
	}
	if len(cfg.Methods) > 0 {
		if err := ic.policies(cfg); err != nil {
			return nil, err
		}
	}
	ok = true
	return ic, nil
}

func jsonOf(doc jsonServiceConfig) (string, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("grpcclient: encoding the service config: %w", err)
	}
	return string(b), nil
}

// policies builds the hedges and fallbacks of cfg.Methods.
func (ic *Interceptors) policies(cfg Config) error {
	mp := cfg.MeterProvider
	budget := cfg.Budget
	ic.methods = make(map[string]*policy, len(cfg.Methods))
	for _, name := range slices.Sorted(maps.Keys(cfg.Methods)) {
		m := cfg.Methods[name]
		field := fmt.Sprintf("Config.Methods[%q]", name)
		p := &policy{}
		if m.Hedge != nil {
			hc := *m.Hedge
			if hc.Budget == nil {
				if budget == nil {
					b, err := retry.NewBudget(retry.BudgetConfig{Name: "grpcclient", MeterProvider: mp})
					if err != nil {
						return fmt.Errorf("grpcclient: %w", err)
					}
					budget = b
				}
				hc.Budget = budget
			}
			if hc.MeterProvider == nil {
				hc.MeterProvider = mp
			}
			h, err := hedge.New(hc)
			if err != nil {
				return fmt.Errorf("grpcclient: %s.Hedge: %w", field, err)
			}
			p.hedge = h
		}
		if f := m.Fallback; f != nil {
			if err := ic.fallback(p, name, field+".Fallback", f, mp); err != nil {
				return err
			}
		}
		if p.hedge == nil && p.fallback == nil {
			continue // the zero Method: nothing to look up on every call
		}
		ic.methods[name] = p
		if strings.HasSuffix(name, "/") {
			ic.services = true
		}
	}
	if len(ic.methods) == 0 {
		ic.methods = nil
	}
	return nil
}

// fnCall carries a failed call to a Func fallback, through the context.
type fnCall struct {
	method     string
	req, reply proto.Message
}

type fnCallKey struct{}

func (ic *Interceptors) fallback(p *policy, name, field string, f *FallbackConfig, mp metric.MeterProvider) error {
	when := f.When
	if when == nil {
		when = fallback.DefaultFor(ic.classify)
	}
	switch {
	case f.Reply != nil:
		v, err := fallback.NewValue(fallback.ValueConfig[proto.Message]{
			Value: proto.Clone(f.Reply), When: when, Name: name, MeterProvider: mp})
		if err != nil {
			return fmt.Errorf("grpcclient: %s: %w", field, err)
		}
		p.fallback = v
	case f.Func != nil:
		fn := f.Func
		v, err := fallback.NewFunc(fallback.FuncConfig[proto.Message]{
			Func: func(ctx context.Context, _ string, err error) (proto.Message, error) {
				c, _ := ctx.Value(fnCallKey{}).(*fnCall)
				if c == nil {
					return nil, err // not a call of ours: decline
				}
				proto.Reset(c.reply)
				if ferr := fn(ctx, c.method, c.req, c.reply, err); ferr != nil {
					return nil, ferr
				}
				return c.reply, nil
			},
			When: when, Name: name, MeterProvider: mp})
		if err != nil {
			return fmt.Errorf("grpcclient: %s: %w", field, err)
		}
		p.fallback, p.fn = v, true
	default:
		cc := f.Cache
		c, err := fallback.NewCache(fallback.CacheConfig[proto.Message]{
			FreshFor:      cc.FreshFor,
			MaxStale:      cc.MaxStale,
			MaxEntries:    cc.MaxEntries,
			MaxBytes:      cc.MaxBytes,
			Size:          sizeFunc(cc.MaxBytes),
			When:          when,
			Name:          name,
			MeterProvider: mp,
		})
		if err != nil {
			return fmt.Errorf("grpcclient: %s.Cache: %w", field, err)
		}
		ic.closers = append(ic.closers, c)
		p.fallback, p.cache, p.cacheKey = c, true, cc.Key
		if p.cacheKey == nil {
			p.cacheKey = requestKey
		}
	}
	return nil
}

// sizeFunc measures cached replies by their encoded size, only when a byte
// bound needs it: measuring costs a walk of the message on every store.
func sizeFunc(maxBytes int64) func(proto.Message) int {
	if maxBytes == 0 {
		return nil
	}
	return func(m proto.Message) int { return proto.Size(m) }
}

// requestKey is the default cache key: the method and the request's
// deterministic encoding; "" (no caching) for a request that is not a
// proto.Message or does not encode.
func requestKey(method string, req proto.Message) string {
	if req == nil {
		return ""
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return ""
	}
	return method + "\x00" + string(b)
}

// DialOptions validates cfg and returns what grpc.NewClient needs to run
// every call through cfg's policies: the unary and stream interceptors
// (chained, so that interceptors given after them run inside, once per
// attempt) and, with cfg.ServiceConfig, the default service config (see
// Interceptors.ServiceConfig for what is left out of it). An invalid field
// is an error naming it.
//
// The Interceptors made here cannot be closed: their gauges are observed
// as long as the MeterProvider lives. Use New and Interceptors.DialOptions
// to close them with the ClientConn.
func DialOptions(cfg Config) ([]grpc.DialOption, error) {
	ic, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return ic.DialOptions(), nil
}

// DialOptions returns the interceptors, and the service config when there
// is one (see ServiceConfig), as options for grpc.NewClient.
func (ic *Interceptors) DialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(ic.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(ic.StreamClientInterceptor()),
	}
	if ic.serviceConfig != "" {
		opts = append(opts, grpc.WithDefaultServiceConfig(ic.serviceConfig))
	}
	if ic.maxAttempts > grpcMaxAttempts {
		opts = append(opts, grpc.WithMaxCallAttempts(ic.maxAttempts))
	}
	return opts
}

// ServiceConfig returns the JSON service config of Config.ServiceConfig;
// "" without one, or when it would change nothing. Its RetryThrottling is
// left out while no MethodConfig has a RetryPolicy: grpc-go throttles
// retries alone, and its throttle costs every call a lock.
func (ic *Interceptors) ServiceConfig() string { return ic.serviceConfig }

// Breakers returns the breakers, one per key (see Config.Key), to read
// their state; nil without Config.Breaker.
func (ic *Interceptors) Breakers() *breaker.Set { return ic.breakers }

// Bulkheads returns the bulkheads, one per key, to read how many calls and
// streams hold a slot; nil without Config.Bulkhead.
func (ic *Interceptors) Bulkheads() *bulkhead.Set { return ic.bulkheads }

// Close unregisters the policies' gauges from the MeterProvider, which
// otherwise keeps the Interceptors reachable. The Interceptors still work.
func (ic *Interceptors) Close() error {
	var errs []error
	for _, c := range ic.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// keyOf returns the key of the guards' state for a call.
func (ic *Interceptors) keyOf(cc *grpc.ClientConn, method string) string {
	if ic.key != nil {
		return ic.key(cc, method)
	}
	return method
}

// total returns the total deadline of a unary call of one attempt. Its
// attempt deadline, never longer than the total one, ends it first when
// there is one, unless the bulkhead's queue made it wait before it
// started: otherwise the clock is not read for a deadline that cannot
// bind.
func (ic *Interceptors) total(ctx context.Context) time.Time {
	if !ic.totalBinds {
		return time.Time{}
	}
	return ic.unary.Deadline(ctx)
}

// policyOf returns the policy of method, or nil.
func (ic *Interceptors) policyOf(method string) *policy {
	if ic.methods == nil {
		return nil
	}
	if p, ok := ic.methods[method]; ok {
		return p
	}
	if ic.services {
		if i := strings.LastIndexByte(method, '/'); i > 0 {
			return ic.methods[method[:i+1]]
		}
	}
	return nil
}
