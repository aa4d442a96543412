// Package load is an open-loop load generator: requests start at a
// constant arrival rate whatever happens to those already in flight, so a
// slow server cannot slow the load down (no coordinated omission), and
// each request's latency is measured from the time it was meant to start,
// not from when it did.
//
// Latencies go into HDR histograms, one per worker, merged at the end;
// every request also leaves a Record (when it was meant to start, how
// long it took, how it ended) from which time series are drawn.
//
//	g, err := load.New(load.Config{Rate: 200, Duration: 10 * time.Second, Deadline: 2 * time.Second},
//		func(ctx context.Context, seq int) load.Outcome { ... })
//	res := g.Run(ctx)
package load
