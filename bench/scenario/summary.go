package scenario

import (
	"time"

	"github.com/bulwarkrpc/bulwark/bench/load"
	"github.com/bulwarkrpc/bulwark/bench/report"
)

// Names of the measurements added to an outage run (report.Run.Extra).
const (
	MetricFirstOpen     = "first_open"
	MetricFailFastP99   = "fail_fast_p99"
	MetricAnsweredOpen  = "answered_while_open"
	MetricAmplification = "amplification_while_open"
)

// recoverWindow is how long success must hold for a client to count as
// recovered, and recoverRatio the share of successes it needs.
const (
	recoverWindow = time.Second
	recoverRatio  = 0.99
)

func (r *runner) summarize(res *load.Result, samples []sample, attempts int64, branches int, arrivals []int64, hasBreakers bool) {
	out := &r.out
	offered, ok, fb, fail := res.Counts()
	out.Offered, out.Success, out.Fallback, out.Failure = offered, ok, fb, fail
	if offered > 0 {
		out.SuccessPct = 100 * float64(ok) / float64(offered)
		out.AnsweredPct = 100 * float64(ok+fb) / float64(offered)
		out.Amplification = float64(attempts) / float64(offered*branches)
	}
	out.P50 = report.Ms(load.Quantile(res.Latency, 0.50))
	out.P99 = report.Ms(load.Quantile(res.Latency, 0.99))
	out.P999 = report.Ms(load.Quantile(res.Latency, 0.999))
	out.SuccessP99 = report.Ms(load.Quantile(res.SuccessLatency, 0.99))
	out.FailureP99 = report.Ms(load.Quantile(res.FailureLatency, 0.99))
	out.Attempts = attempts
	out.Arrivals = arrivals
	out.Workers, out.Late, out.Interrupted = res.Workers, res.Late, res.Interrupted

	bucket := r.o.Bucket
	series := res.Series(bucket, r.d)
	prev := int64(0)
	for i, b := range series {
		p := report.Point{
			T: report.Ms(b.Start), Offered: b.Offered, Success: b.Success, Fallback: b.Fallback, Failure: b.Failure,
			P50: report.Ms(b.P50), P99: report.Ms(b.P99),
		}
		if i < len(samples) { // sample i is taken at the end of bucket i
			p.Attempts = samples[i].attempts - prev
			prev = samples[i].attempts
		}
		out.Series = append(out.Series, p)
	}
	if hasBreakers {
		for _, s := range samples {
			out.Breakers = append(out.Breakers, report.BPoint{T: report.Ms(s.t), Open: s.open, HalfOpen: s.halfOpen})
		}
	}

	fs, fe := r.s.Fault(r.d)
	switch r.s.Recovery {
	case FromStart:
		r.recover(series, fs, res.Interrupted)
	case FromEnd:
		r.recover(series, fe, res.Interrupted)
		r.whileOpen(res, samples, fs, fe)
	}
}

// recover sets the time to recover from ref.
func (r *runner) recover(series []load.Bucket, ref time.Duration, interrupted bool) {
	if d, ok := TimeToRecover(series, r.o.Bucket, r.d, ref); ok {
		m := report.Ms(d)
		r.out.Recover = &m
		return
	}
	r.out.Never = !interrupted
}

// TimeToRecover returns the time from ref to the start of the first full
// second (whole buckets of the given width, inside a run of the given
// length) in which at least 99 % of the requests offered succeeded; false
// when there is none.
func TimeToRecover(series []load.Bucket, width, length, ref time.Duration) (time.Duration, bool) {
	n := int(recoverWindow / width)
	last := int(length/width) - n // the last window that fits in the run
	for i := max(int(ref/width), 0); i <= last && i+n <= len(series); i++ {
		offered, ok := 0, 0
		for _, b := range series[i : i+n] {
			offered += b.Offered
			ok += b.Success
		}
		if offered > 0 && float64(ok) >= recoverRatio*float64(offered) {
			return max(time.Duration(i)*width-ref, 0), true
		}
	}
	return 0, false
}

// whileOpen measures the outage once a breaker of the client has opened:
// how fast failures are answered, how much of it is answered all the same
// (from a cache), and how many attempts still reach the wire.
func (r *runner) whileOpen(res *load.Result, samples []sample, fs, fe time.Duration) {
	first := -1
	for i, s := range samples {
		if s.t >= fs && s.t < fe && s.open > 0 {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	from := samples[first].t
	var failed []time.Duration
	offered, answered := 0, 0
	for _, rec := range res.Records {
		if rec.At < from || rec.At >= fe {
			continue
		}
		offered++
		if rec.Outcome != load.Failure {
			answered++
		}
		if rec.Outcome != load.Success {
			failed = append(failed, rec.Latency)
		}
	}
	att := samples[len(samples)-1].attempts
	for _, s := range samples[first:] {
		if s.t >= fe {
			att = s.attempts
			break
		}
	}
	att -= samples[first].attempts
	r.out.Extra = append(r.out.Extra, report.Metric{Name: MetricFirstOpen, Value: float64(report.Ms(from)), Unit: "ms"})
	if offered == 0 {
		return
	}
	r.out.Extra = append(r.out.Extra,
		report.Metric{Name: MetricFailFastP99, Value: float64(report.Ms(load.Percentile(failed, 0.99))), Unit: "ms"},
		report.Metric{Name: MetricAnsweredOpen, Value: 100 * float64(answered) / float64(offered), Unit: "%"},
		report.Metric{Name: MetricAmplification, Value: float64(att) / float64(offered), Unit: "×"},
	)
}

// extra returns the measurement of that name, if the run has it.
func extra(run *report.Run, name string) (float64, bool) {
	for _, m := range run.Extra {
		if m.Name == name {
			return m.Value, true
		}
	}
	return 0, false
}
