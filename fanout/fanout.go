package fanout

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
)

const scope = "github.com/bulwarkrpc/bulwark/fanout"

// Config configures a Fanout. The zero Config is valid: every branch of a
// Gather or a Quorum runs at once, and First staggers its branches by
// hedge's default delay (2s), drawing on a retry budget of the Fanout's own.
type Config struct {
	// MaxConcurrent bounds how many branches of one Gather or Quorum run
	// at the same time; the others start as running ones end. (First
	// starts its branches one at a time anyway.) Zero means no bound: all
	// of them at once.
	MaxConcurrent int
	// Hedge staggers the branches of First: Delay (fixed), or Latency and
	// Quantile (the delay follows observed latency), MinDelay and Budget,
	// as hedge.Config documents them. Its MaxHedges must be zero: First
	// may start every branch it is given, so it sets MaxHedges to their
	// number less one. A nil Budget means one budget of the Fanout's own,
	// shared by all its First calls; give the budget your retries draw on,
	// so that racing branches are extra load the same bound limits. A nil
	// MeterProvider means this Config's. The zero value means hedge's
	// defaults.
	Hedge hedge.Config
	// Name is reported in the bulwark.key attribute of the metrics and the
	// spans, which keeps several Fanouts on one provider apart. Zero means
	// "".
	Name string
	// MeterProvider receives the bulwark.fanout.* instruments. Nil means
	// the global provider.
	MeterProvider metric.MeterProvider
	// TracerProvider makes one span per branch, under the caller's span,
	// when that span is recording. Nil means the global provider.
	TracerProvider trace.TracerProvider
}

// Fanout runs several calls at once and keeps what each of them answered:
// Gather (every branch, typed, with its own policies), Quorum (k of n) and
// First (a staggered race). It holds the configuration and the
// instruments; each call brings its own branches. A Fanout is safe for
// concurrent use. Build it with New.
//
// Metrics: bulwark.fanout.branches counts the branches that ran, by
// bulwark.fanout.op (gather, quorum, first) and bulwark.fanout.outcome
// (success, failure, fallback, abandoned); bulwark.fanout.partial counts
// the calls that answered while some branches failed: a Gather with some
// branches answered and others failed, fallen back or abandoned; a Quorum
// or a First that succeeded although some branches failed (losers
// cancelled once the call was decided are abandoned, not failed). Both carry bulwark.key, the Config's Name, and live as long
// as the MeterProvider. They are counted once per call, not per branch.
// First runs on one hedge.Hedge per number of branches raced, made on the
// first First with that many and kept.
type Fanout struct {
	max    int
	name   string
	tracer trace.Tracer
	hedge  hedge.Config
	hedges sync.Map // number of branches → *hedge.Hedge with MaxHedges = n-1

	branches, partial metric.Int64Counter
	outcome           [nOps][nStatus][]metric.AddOption // built once; slices, so Add's variadic argument does not allocate
	partialOpt        [nOps][]metric.AddOption
	keyAttr           attribute.KeyValue
}

// New validates cfg and returns its Fanout. A negative MaxConcurrent, a
// non-zero Hedge.MaxHedges or a Hedge field that hedge.New refuses is an
// error naming the field.
func New(cfg Config) (*Fanout, error) {
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("fanout: Config.MaxConcurrent is %d, want >= 0", cfg.MaxConcurrent)
	}
	if cfg.Hedge.MaxHedges != 0 {
		return nil, fmt.Errorf("fanout: Config.Hedge.MaxHedges is %d, want 0: First sets it from the number of branches", cfg.Hedge.MaxHedges)
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	f := &Fanout{
		max:     cfg.MaxConcurrent,
		name:    cfg.Name,
		tracer:  tp.Tracer(scope),
		hedge:   cfg.Hedge,
		keyAttr: attribute.String("bulwark.key", cfg.Name),
	}
	if f.hedge.MeterProvider == nil {
		f.hedge.MeterProvider = mp
	}
	if f.hedge.Budget == nil {
		b, err := retry.NewBudget(retry.BudgetConfig{Name: cfg.Name, MeterProvider: f.hedge.MeterProvider})
		if err != nil {
			return nil, fmt.Errorf("fanout: %w", err)
		}
		f.hedge.Budget = b
	}
	// Validate the hedging fields now, with the smallest race First runs,
	// so that a First call never meets a configuration error.
	if _, err := f.hedgeFor(2); err != nil {
		return nil, fmt.Errorf("fanout: Config.Hedge: %w", err)
	}
	m := mp.Meter(scope)
	var err error
	if f.branches, err = m.Int64Counter("bulwark.fanout.branches",
		metric.WithDescription("Branches of fan-out calls that ran, by how each ended: success, failure, fallback (a fallback answered its failure) or abandoned (the call stopped waiting for it)."),
		metric.WithUnit("{branch}")); err != nil {
		return nil, fmt.Errorf("fanout: creating instruments: %w", err)
	}
	if f.partial, err = m.Int64Counter("bulwark.fanout.partial",
		metric.WithDescription("Fan-out calls that answered while some of their branches failed, fell back or were abandoned."),
		metric.WithUnit("{call}")); err != nil {
		return nil, fmt.Errorf("fanout: creating instruments: %w", err)
	}
	for o := range nOps {
		op := attribute.String("bulwark.fanout.op", op(o).String())
		f.partialOpt[o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(f.keyAttr, op))}
		for s := StatusSuccess; s < nStatus; s++ {
			f.outcome[o][s] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
				f.keyAttr, op, attribute.String("bulwark.fanout.outcome", s.String())))}
		}
	}
	return f, nil
}

// hedgeFor returns the Hedge that races n branches, made on first use for
// each n and kept.
func (f *Fanout) hedgeFor(n int) (*hedge.Hedge, error) {
	if h, ok := f.hedges.Load(n); ok {
		return h.(*hedge.Hedge), nil
	}
	cfg := f.hedge
	cfg.MaxHedges = n - 1
	h, err := hedge.New(cfg)
	if err != nil {
		return nil, err
	}
	got, _ := f.hedges.LoadOrStore(n, h)
	return got.(*hedge.Hedge), nil
}

// op is the kind of fan-out call, reported in bulwark.fanout.op.
type op uint8

const (
	opGather op = iota
	opQuorum
	opFirst
	nOps
)

func (o op) String() string {
	switch o {
	case opGather:
		return "gather"
	case opQuorum:
		return "quorum"
	}
	return "first"
}

// Status is how one branch ended, as its caller sees it. The zero Status
// is StatusPending.
type Status uint8

const (
	// StatusPending: the branch has not ended yet, or its call has not
	// returned.
	StatusPending Status = iota
	// StatusSuccess: the branch's call answered.
	StatusSuccess
	// StatusFallback: the branch's call failed and its fallback answered
	// instead (a default, a cached value).
	StatusFallback
	// StatusFailure: the branch's call failed, with nothing to replace
	// it.
	StatusFailure
	// StatusAbandoned: the fan-out stopped waiting for the branch: the
	// caller's context ended, or a Quorum or First was decided without
	// it. Its call may still be running; what it returns is dropped.
	StatusAbandoned
	nStatus
)

// String returns "pending", "success", "fallback", "failure" or
// "abandoned"; the last four are the values of the bulwark.fanout.outcome
// metric attribute.
func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusSuccess:
		return "success"
	case StatusFallback:
		return "fallback"
	case StatusFailure:
		return "failure"
	case StatusAbandoned:
		return "abandoned"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// answered reports whether the caller got a value from the branch.
func (s Status) answered() bool { return s == StatusSuccess || s == StatusFallback }

// counts holds how many branches of one call ended in each Status.
type counts [nStatus]int

// record counts one call's branches, with one Add per outcome present so
// that a healthy call makes one metric call, and the call itself when it
// was partial.
func (f *Fanout) record(ctx context.Context, o op, c *counts, partial bool) {
	for s := StatusSuccess; s < nStatus; s++ {
		if c[s] > 0 {
			f.branches.Add(ctx, int64(c[s]), f.outcome[o][s]...)
		}
	}
	if partial {
		f.partial.Add(ctx, 1, f.partialOpt[o]...)
	}
}

// startSpan starts the span of branch i, named name, of a call of kind o.
// Callers start one only when the caller's span is recording.
func (f *Fanout) startSpan(ctx context.Context, o op, name string, i int) (context.Context, trace.Span) {
	return f.tracer.Start(ctx, "bulwark.fanout.branch", trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		f.keyAttr,
		attribute.String("bulwark.fanout.op", o.String()),
		attribute.String("bulwark.fanout.branch", name),
		attribute.Int("bulwark.fanout.index", i)))
}

// endSpan ends a branch's span with its Status; span may be nil.
func endSpan(span trace.Span, s Status, err error) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.String("bulwark.fanout.outcome", s.String()))
	if err != nil {
		span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// recording reports whether branches of a call under ctx get spans.
func recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// call runs fn once, through s when s is not nil, on key.
func call[T any](ctx context.Context, s *bulwark.Stack, key string, fn func(context.Context) (T, error)) (T, error) {
	if s == nil {
		return fn(ctx)
	}
	return bulwark.Do(ctx, s, key, fn)
}
