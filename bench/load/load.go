package load

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Outcome is how one request ended, as its caller sees it.
type Outcome uint8

const (
	// Success: the server answered the request.
	Success Outcome = iota
	// Fallback: the request failed but was answered all the same, from
	// a cache or a default.
	Fallback
	// Failure: the caller got an error or an error status.
	Failure
	// Canceled: the run was stopped before the request ended; it is
	// left out of every count.
	Canceled
)

// String returns "success", "fallback", "failure" or "canceled".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Fallback:
		return "fallback"
	case Failure:
		return "failure"
	case Canceled:
		return "canceled"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Config configures a Generator.
type Config struct {
	// Rate is the arrival rate in requests per second; it must be > 0
	// and at most 100000.
	Rate float64
	// Duration is how long requests keep starting; it must be > 0. The
	// run offers ceil(Rate·Duration) requests, then waits for those in
	// flight.
	Duration time.Duration
	// Deadline bounds each request, counted from the time it was meant to
	// start, as its caller's deadline would. Zero means none; it must be
	// >= 0.
	Deadline time.Duration
	// MaxInFlight bounds the requests in flight (the workers). When it is
	// reached, requests start late — their latency still counts from the
	// time they were meant to start — and Result.Late counts them. Zero
	// means 10000; it must be >= 0.
	MaxInFlight int
}

const (
	defaultMaxInFlight = 10000
	maxRate            = 100000
	// lateAfter is how far behind its time a request may start before it
	// counts as late: the generator, not the system measured, was behind.
	lateAfter = 10 * time.Millisecond
	// Histograms hold microseconds from 1µs to a minute, 2 significant
	// digits: 20 KiB each, one set per worker.
	histMax     = int64(time.Minute / time.Microsecond)
	histSigFigs = 2
)

func (c Config) validate() error {
	switch {
	case !(c.Rate > 0) || c.Rate > maxRate:
		return fmt.Errorf("load: Config.Rate is %v, want within (0, %d]", c.Rate, maxRate)
	case c.Duration <= 0:
		return fmt.Errorf("load: Config.Duration is %v, want > 0", c.Duration)
	case c.Deadline < 0:
		return fmt.Errorf("load: Config.Deadline is %v, want >= 0", c.Deadline)
	case c.MaxInFlight < 0:
		return fmt.Errorf("load: Config.MaxInFlight is %d, want >= 0", c.MaxInFlight)
	}
	return nil
}

// Func sends request number seq (from 0) and tells how it ended. ctx
// carries the request's deadline; when ctx ends because the run was
// stopped, the Outcome is discarded (Canceled). Func must be safe for
// concurrent use.
type Func func(ctx context.Context, seq int) Outcome

// Record is one request.
type Record struct {
	// At is when the request was meant to start, from the run's start.
	At time.Duration
	// Latency is how long it took, from At.
	Latency time.Duration
	// Outcome is how it ended.
	Outcome Outcome
}

// Generator runs one open-loop run. Build it with New; Run it once.
// Progress is safe to call from another goroutine during Run.
type Generator struct {
	cfg Config
	fn  Func

	start                      atomic.Int64 // unix nanoseconds; 0 before Run
	sent, inFlight             atomic.Int64
	success, fallback, failure atomic.Int64
}

// New validates cfg and returns a Generator that sends each request with fn.
func New(cfg Config, fn Func) (*Generator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, fmt.Errorf("load: nil Func")
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = defaultMaxInFlight
	}
	return &Generator{cfg: cfg, fn: fn}, nil
}

// Planned is the number of requests a full run offers.
func (c Config) Planned() int {
	return int(math.Ceil(c.Rate * c.Duration.Seconds()))
}

// Progress is a snapshot of a run in progress.
type Progress struct {
	Elapsed                    time.Duration
	Sent, InFlight             int64
	Success, Fallback, Failure int64
}

// Progress returns where the run stands.
func (g *Generator) Progress() Progress {
	p := Progress{
		Sent:     g.sent.Load(),
		InFlight: g.inFlight.Load(),
		Success:  g.success.Load(),
		Fallback: g.fallback.Load(),
		Failure:  g.failure.Load(),
	}
	if s := g.start.Load(); s != 0 {
		p.Elapsed = time.Since(time.Unix(0, s))
	}
	return p
}

type job struct {
	at       time.Duration
	intended time.Time
	seq      int
}

// worker sends jobs one at a time and records them in histograms and a
// log of its own, merged when the run ends.
type worker struct {
	all, ok, failed *hdrhistogram.Histogram
	records         []Record
	late            int
}

func newWorker() *worker {
	return &worker{
		all:    hdrhistogram.New(1, histMax, histSigFigs),
		ok:     hdrhistogram.New(1, histMax, histSigFigs),
		failed: hdrhistogram.New(1, histMax, histSigFigs),
	}
}

// Run sends the requests and returns what it measured. When ctx ends
// early, Run stops sending, lets the requests in flight end (their
// contexts end with ctx) and returns what was measured, with Interrupted
// set.
func (g *Generator) Run(ctx context.Context) *Result {
	start := time.Now()
	g.start.Store(start.UnixNano())
	planned := g.cfg.Planned()
	interval := float64(time.Second) / g.cfg.Rate

	jobs := make(chan job) // unbuffered: a job is taken only by an idle worker
	var wg sync.WaitGroup
	var workers []*worker
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

send:
	for i := range planned {
		at := time.Duration(float64(i) * interval)
		intended := start.Add(at)
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				break send
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		j := job{at: at, intended: intended, seq: i}
		g.sent.Add(1)
		select {
		case jobs <- j:
			continue
		default:
		}
		if len(workers) < g.cfg.MaxInFlight {
			w := newWorker()
			workers = append(workers, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.work(ctx, w, j, jobs)
			}()
			continue
		}
		select {
		case jobs <- j:
		case <-ctx.Done():
			g.sent.Add(-1)
			break send
		}
	}
	close(jobs)
	wg.Wait()
	return g.merge(start, workers, ctx.Err() != nil)
}

func (g *Generator) work(ctx context.Context, w *worker, first job, jobs <-chan job) {
	g.do(ctx, w, first)
	for j := range jobs {
		g.do(ctx, w, j)
	}
}

func (g *Generator) do(parent context.Context, w *worker, j job) {
	g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	if time.Since(j.intended) > lateAfter {
		w.late++
	}
	ctx, cancel := parent, context.CancelFunc(func() {})
	if g.cfg.Deadline > 0 {
		ctx, cancel = context.WithDeadline(parent, j.intended.Add(g.cfg.Deadline))
	}
	o := g.fn(ctx, j.seq)
	lat := time.Since(j.intended)
	cancel()
	if parent.Err() != nil && o != Success && o != Fallback {
		o = Canceled
	}
	switch o {
	case Success:
		g.success.Add(1)
	case Fallback:
		g.fallback.Add(1)
	case Failure:
		g.failure.Add(1)
	}
	w.records = append(w.records, Record{At: j.at, Latency: lat, Outcome: o})
	if o == Canceled {
		return
	}
	us := min(max(lat.Microseconds(), 1), histMax)
	_ = w.all.RecordValue(us)
	if o == Success {
		_ = w.ok.RecordValue(us)
	} else {
		_ = w.failed.RecordValue(us)
	}
}

func (g *Generator) merge(start time.Time, workers []*worker, interrupted bool) *Result {
	r := &Result{
		Start:          start,
		Elapsed:        time.Since(start),
		Planned:        g.cfg.Planned(),
		Workers:        len(workers),
		Interrupted:    interrupted,
		Latency:        hdrhistogram.New(1, histMax, histSigFigs),
		SuccessLatency: hdrhistogram.New(1, histMax, histSigFigs),
		FailureLatency: hdrhistogram.New(1, histMax, histSigFigs),
	}
	n := 0
	for _, w := range workers {
		n += len(w.records)
	}
	r.Records = make([]Record, 0, n)
	for _, w := range workers {
		r.Latency.Merge(w.all)
		r.SuccessLatency.Merge(w.ok)
		r.FailureLatency.Merge(w.failed)
		r.Late += w.late
		for _, rec := range w.records {
			if rec.Outcome == Canceled {
				r.Canceled++
				continue
			}
			r.Records = append(r.Records, rec)
		}
	}
	slices.SortFunc(r.Records, func(a, b Record) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return r
}
