package scenario

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/clients"
	"github.com/bulwarkrpc/bulwark/bench/fleet"
	"github.com/bulwarkrpc/bulwark/bench/load"
	"github.com/bulwarkrpc/bulwark/bench/report"
)

// Options configure a benchmark run.
type Options struct {
	// Scenarios and Clients are what runs: every client through every
	// scenario (gRPC clients skip HTTP-only scenarios).
	Scenarios []Scenario
	Clients   []clients.Spec
	// Quick uses each scenario's quick length.
	Quick bool
	// Rate, when not zero, replaces each scenario's rate, except where
	// the rate is tied to the fleet's capacity (FixedRate).
	Rate float64
	// Duration, when not zero, replaces each scenario's length.
	Duration time.Duration
	// Deadline is each request's deadline, from its intended start (the
	// fan-out scenario has its own). Zero means 2s.
	Deadline time.Duration
	// Serial runs the clients of a scenario one after another; otherwise
	// they run at the same time, each against a fleet of its own.
	Serial bool
	// Bucket is the width of the time series. Zero means 100ms.
	Bucket time.Duration
	// Progress, when not nil, receives a line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Defaults of Options.
const (
	DefaultDeadline = 2 * time.Second
	DefaultBucket   = 100 * time.Millisecond
)

func (o *Options) settle() {
	if o.Deadline == 0 {
		o.Deadline = DefaultDeadline
	}
	if o.Bucket == 0 {
		o.Bucket = DefaultBucket
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = 2 * time.Second
	}
}

// Length returns how long a run of s lasts under o.
func (o Options) Length(s Scenario) time.Duration {
	switch {
	case o.Duration > 0:
		return o.Duration
	case o.Quick:
		return s.Quick
	}
	return s.Duration
}

// RateOf returns the arrival rate of s under o.
func (o Options) RateOf(s Scenario) float64 {
	if o.Rate > 0 && !s.FixedRate {
		return o.Rate
	}
	return s.Rate
}

// Run runs every scenario of o and returns the report, checks included.
// When ctx ends, it stops at once and returns what was measured, marked
// Interrupted.
func Run(ctx context.Context, o Options) *report.Report {
	o.settle()
	rep := &report.Report{
		Started: time.Now(),
		Machine: report.Machine{
			GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		},
		Settings: report.Settings{
			Quick: o.Quick, Rate: o.Rate, Deadline: report.Ms(o.Deadline),
			Serial: o.Serial, Bucket: report.Ms(o.Bucket),
		},
	}
	for _, c := range o.Clients {
		rep.Clients = append(rep.Clients, report.Client{Name: c.Name, Transport: string(c.Transport), Bulwark: c.Bulwark, Config: c.Config})
	}
	for _, s := range o.Scenarios {
		if ctx.Err() != nil {
			break
		}
		rep.Scenarios = append(rep.Scenarios, runScenario(ctx, o, s))
	}
	rep.Interrupted = ctx.Err() != nil
	rep.Finished = time.Now()
	rep.Checks, rep.Notes = Check(rep, o.Clients)
	return rep
}

func runScenario(ctx context.Context, o Options, s Scenario) report.Scenario {
	d := o.Length(s)
	fs, fe := s.Fault(d)
	rs := report.Scenario{
		Name: s.Name, Title: s.Title, Description: s.Description,
		Duration: report.Ms(d), Rate: o.RateOf(s),
		FaultStart: report.Ms(fs), FaultEnd: report.Ms(fe),
	}
	var specs []clients.Spec
	for _, c := range o.Clients {
		if c.Transport == clients.GRPC && s.HTTPOnly {
			continue
		}
		specs = append(specs, c)
	}
	runs := make([]*runner, len(specs))
	for i, c := range specs {
		runs[i] = &runner{o: o, s: s, spec: c, d: d}
	}
	stop := make(chan struct{})
	var progress sync.WaitGroup
	if o.Progress != nil {
		progress.Add(1)
		go func() {
			defer progress.Done()
			line := func() {
				var parts []string
				for _, r := range runs {
					if p, ok := r.progress(); ok {
						parts = append(parts, fmt.Sprintf("%s %d sent %.1f%% ok", r.spec.Name, p.Sent, pctOf(p.Success, p.Success+p.Fallback+p.Failure)))
					}
				}
				if len(parts) > 0 {
					fmt.Fprintf(o.Progress, "  %-9s %s\n", s.Name, strings.Join(parts, " · "))
				}
			}
			t := time.NewTicker(o.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					line()
				}
			}
		}()
		fmt.Fprintf(o.Progress, "scenario %s: %s — %d clients, %.0f req/s each, %v\n", s.Name, s.Title, len(specs), rs.Rate, d)
	}
	if o.Serial || s.Alone {
		for _, r := range runs {
			if ctx.Err() != nil {
				break
			}
			r.run(ctx)
		}
	} else {
		var wg sync.WaitGroup
		for _, r := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.run(ctx)
			}()
		}
		wg.Wait()
	}
	close(stop)
	progress.Wait()
	for _, r := range runs {
		if r.started.Load() {
			rs.Runs = append(rs.Runs, r.out)
		}
	}
	return rs
}

func pctOf(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// runner is one client through one scenario.
type runner struct {
	o    Options
	s    Scenario
	spec clients.Spec
	d    time.Duration

	gen     atomic.Pointer[load.Generator]
	started atomic.Bool
	out     report.Run
}

func (r *runner) progress() (load.Progress, bool) {
	g := r.gen.Load()
	if g == nil {
		return load.Progress{}, false
	}
	return g.Progress(), true
}

// sample is the state of a client at one tick.
type sample struct {
	t              time.Duration
	attempts       int64
	open, halfOpen int
}

func (r *runner) run(ctx context.Context) {
	r.started.Store(true)
	r.out = report.Run{Client: r.spec.Name, Transport: string(r.spec.Transport)}
	fail := func(err error) { r.out.Error = err.Error() }

	fc := fleet.Config{Schedule: r.s.Schedule(r.d)}
	if r.spec.Transport == clients.GRPC {
		fc.GRPC = r.s.Endpoints
	} else {
		fc.HTTP = r.s.Endpoints
	}
	f, err := fleet.Start(fc)
	if err != nil {
		fail(err)
		return
	}
	defer f.Close()
	attempts := new(atomic.Int64)
	c, err := r.spec.New(clients.Endpoints{HTTP: f.HTTPURLs(), GRPC: f.GRPCAddrs()}, attempts)
	if err != nil {
		fail(fmt.Errorf("building the client: %w", err))
		return
	}
	n := r.s.Endpoints
	deadline := r.o.Deadline
	if r.s.FanOut {
		deadline = r.s.FanOutDeadline
	}
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	fo, _ := c.(clients.FanOuter)
	fn := func(ctx context.Context, seq int) load.Outcome {
		key := keys[seq%len(keys)]
		switch {
		case r.s.FanOut && fo != nil:
			return fo.FanOut(ctx, n, key)
		case r.s.FanOut:
			return fanOut(ctx, c, n, key)
		}
		return c.Call(ctx, seq%n, key)
	}
	g, err := load.New(load.Config{Rate: r.o.RateOf(r.s), Duration: r.d, Deadline: deadline}, fn)
	if err != nil {
		_ = c.Close()
		fail(err)
		return
	}
	r.gen.Store(g)

	// Sample the attempts and the breakers once per bucket.
	brk, _ := c.(clients.Breakers)
	var samples []sample
	stop := make(chan struct{})
	sampled := make(chan struct{})
	start := time.Now()
	take := func() {
		s := sample{t: time.Since(start), attempts: attempts.Load()}
		if brk != nil {
			s.open, s.halfOpen = brk.Breakers()
		}
		samples = append(samples, s)
	}
	f.Begin()
	go func() {
		defer close(sampled)
		t := time.NewTicker(r.o.Bucket)
		defer t.Stop()
		for {
			select {
			case <-stop:
				take()
				return
			case <-t.C:
				take()
			}
		}
	}()
	res := g.Run(ctx)
	close(stop)
	<-sampled
	arrivals := f.HTTPArrivals()
	if r.spec.Transport == clients.GRPC {
		arrivals = f.GRPCArrivals()
	}
	if err := c.Close(); err != nil {
		fail(fmt.Errorf("closing the client: %w", err))
	}
	if err := f.Err(); err != nil {
		fail(err)
	}
	branches := 1
	if r.s.FanOut {
		branches = n
	}
	r.summarize(res, samples, attempts.Load(), branches, arrivals, brk != nil)
}

// fanOut, the fan-out of clients without one of their own, sends key to
// every endpoint at once with plain goroutines and waits for them all
// (each ends by ctx's deadline); it is a Success when all but at most one
// answered.
func fanOut(ctx context.Context, c clients.Client, n int, key string) load.Outcome {
	results := make(chan load.Outcome, n)
	for i := range n {
		go func() { results <- c.Call(ctx, i, key) }()
	}
	answered := 0
	for range n {
		if o := <-results; o == load.Success || o == load.Fallback {
			answered++
		}
	}
	if answered >= n-1 {
		return load.Success
	}
	return load.Failure
}
