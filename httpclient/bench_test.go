package httpclient_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/httpclient"
)

// BenchmarkPaired makes, in every iteration, one bare call, one call under
// a bare context.WithTimeout and one call through the Standard stack,
// against the same loopback server, timing each; the order rotates so that
// none always goes first. It reports the medians and what each adds to the
// bare call: a ratio from one run, so the machine's noise hits all three
// alike. Run with -benchtime=20000x or more.
func BenchmarkPaired(b *testing.B) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	base := srv.Client()
	wrapped, _ := srv.client(b, httpclient.Standard())
	ctx := context.Background()
	call := func(c *http.Client, timeout bool) time.Duration {
		start := time.Now()
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if timeout {
			rctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		}
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		return time.Since(start)
	}
	var bare, withTimeout, standard []time.Duration
	i := 0
	for b.Loop() {
		for k := range 3 {
			switch (i + k) % 3 {
			case 0:
				bare = append(bare, call(base, false))
			case 1:
				withTimeout = append(withTimeout, call(base, true))
			case 2:
				standard = append(standard, call(wrapped, false))
			}
		}
		i++
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	mb, mt, ms := med(bare), med(withTimeout), med(standard)
	b.ReportMetric(mb, "bare-ns")
	b.ReportMetric(mt-mb, "timeout-added-ns")
	b.ReportMetric(ms-mb, "standard-added-ns")
	if mt > mb {
		b.ReportMetric((ms-mb)/(mt-mb), "standard/timeout")
	}
	b.ReportMetric(0, "ns/op") // the three medians above are the result
}

// BenchmarkAllocs measures what one call costs in allocations, bare and
// through each stack, sequentially and in parallel.
func BenchmarkAllocs(b *testing.B) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	noRetry := httpclient.Standard()
	noRetry.Retry = nil
	clients := []struct {
		name string
		cfg  *httpclient.Config
	}{
		{"bare", nil},
		{"zero-config", &httpclient.Config{}},
		{"standard-without-retry", &noRetry},
		{"standard", func() *httpclient.Config { c := httpclient.Standard(); return &c }()},
	}
	for _, cl := range clients {
		c := srv.Client()
		if cl.cfg != nil {
			c, _ = srv.client(b, *cl.cfg)
		}
		do := func() {
			resp, err := c.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.Run(cl.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				do()
			}
		})
		b.Run(cl.name+"/par", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do()
				}
			})
		})
	}
}
