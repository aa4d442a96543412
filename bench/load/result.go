package load

import (
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what a run measured. Requests cut short by the end of the run
// (Canceled) are left out of everything but the Canceled count.
type Result struct {
	// Start is when the run started.
	Start time.Time
	// Elapsed is how long it ran, waiting for the last request included.
	Elapsed time.Duration
	// Planned is how many requests a full run offers.
	Planned int
	// Records holds every request that ended, ordered by Record.At.
	Records []Record
	// Latency, SuccessLatency and FailureLatency are the merged
	// histograms, in microseconds, of every request, of the Successes,
	// and of the rest (Fallbacks and Failures).
	Latency, SuccessLatency, FailureLatency *hdrhistogram.Histogram
	// Workers is how many workers the run needed: the peak number of
	// requests in flight.
	Workers int
	// Late counts requests that started more than 10ms after their time
	// because every worker was busy or the machine was: the generator was
	// behind. Their latency still counts from their time.
	Late int
	// Canceled counts the requests cut short when the run was stopped.
	Canceled int
	// Interrupted says the run was stopped before its end.
	Interrupted bool
}

// Counts returns the number of requests offered (every Record) and how
// many ended in each Outcome.
func (r *Result) Counts() (offered, success, fallback, failure int) {
	for _, rec := range r.Records {
		switch rec.Outcome {
		case Success:
			success++
		case Fallback:
			fallback++
		case Failure:
			failure++
		}
	}
	return len(r.Records), success, fallback, failure
}

// Quantile returns quantile q (within [0, 1]) of a histogram in
// microseconds, as a Duration; zero for an empty histogram.
func Quantile(h *hdrhistogram.Histogram, q float64) time.Duration {
	if h == nil || h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.ValueAtQuantile(q*100)) * time.Microsecond
}

// Percentile returns quantile q (within [0, 1]) of ds by nearest rank;
// zero for none. It sorts ds.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.999999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// Bucket is one slice of time of a run.
type Bucket struct {
	// Start is the start of the slice, from the run's start.
	Start time.Duration
	// Offered counts the requests meant to start in the slice, and the
	// others how they ended.
	Offered, Success, Fallback, Failure int
	// P50 and P99 are the latency percentiles of those requests.
	P50, P99 time.Duration
}

// Series cuts the run into slices of width (by the time each request was
// meant to start) up to the end of the planned run, or of the last
// request if later. Slices with no request are present, with zeros.
func (r *Result) Series(width time.Duration, planned time.Duration) []Bucket {
	if width <= 0 {
		return nil
	}
	end := planned
	if n := len(r.Records); n > 0 && r.Records[n-1].At >= end {
		end = r.Records[n-1].At + 1
	}
	out := make([]Bucket, int((end+width-1)/width))
	for i := range out {
		out[i].Start = time.Duration(i) * width
	}
	var lats []time.Duration
	cur := -1
	flush := func() {
		if cur >= 0 {
			out[cur].P50 = Percentile(lats, 0.50)
			out[cur].P99 = Percentile(lats, 0.99)
		}
		lats = lats[:0]
	}
	for _, rec := range r.Records {
		i := int(rec.At / width)
		if i >= len(out) {
			break
		}
		if i != cur {
			flush()
			cur = i
		}
		b := &out[i]
		b.Offered++
		switch rec.Outcome {
		case Success:
			b.Success++
		case Fallback:
			b.Fallback++
		case Failure:
			b.Failure++
		}
		lats = append(lats, rec.Latency)
	}
	flush()
	return out
}
