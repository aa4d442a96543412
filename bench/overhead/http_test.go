package overhead_test

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/bulwarkrpc/bulwark/httpclient"
)

// variant is one way to make the same GET.
type variant struct {
	name string
	do   func(ctx context.Context) error
}

// httpVariants returns the ways to call srv: bare, under a bare
// context.WithTimeout, through bulwark's Standard stack, and through
// failsafe-go's documented stack (retry, breaker, bulkhead, timeout). Each
// has a transport of its own.
func httpVariants(tb testing.TB, srv *httptest.Server) []variant {
	tb.Helper()
	// One pool of connections under every variant: given pools of their
	// own, variants differ by which connection they drew as well.
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64 // RunParallel must not churn connections
	tb.Cleanup(base.CloseIdleConnections)
	url := srv.URL + "/item/k"
	get := func(c *http.Client) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return err
		}
	}
	bare := &http.Client{Transport: base}
	timed := &http.Client{Transport: base}
	bt, err := httpclient.New(base, httpclient.Standard())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { bt.Close() })
	fs := &http.Client{Transport: failsafehttp.NewRoundTripper(base,
		failsafehttp.NewRetryPolicyBuilder().WithBackoff(time.Second, 30*time.Second).WithMaxRetries(3).Build(),
		circuitbreaker.NewBuilder[*http.Response]().WithFailureThreshold(5).WithSuccessThreshold(2).WithDelay(5*time.Second).Build(),
		bulkhead.New[*http.Response](256),
		timeout.New[*http.Response](10*time.Second),
	)}
	return []variant{
		{"bare", get(bare)},
		{"bare-again", get(bare)}, // what two identical variants differ by: the noise
		{"timeout", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return get(timed)(ctx)
		}},
		{"bulwark", get(&http.Client{Transport: bt})},
		{"failsafe", get(fs)},
	}
}

func okServer(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// BenchmarkHTTP is one loopback GET per iteration through each variant,
// sequential and parallel, with allocations.
func BenchmarkHTTP(b *testing.B) {
	srv := okServer(b)
	for _, v := range httpVariants(b, srv) {
		runVariant(b, v)
	}
}

func runVariant(b *testing.B, v variant) {
	ctx := context.Background()
	b.Run("impl="+v.name+"/mode=seq", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.do(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl="+v.name+"/mode=par", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := v.do(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkHTTPPaired makes, in every iteration, one call of each variant
// on the same loopback server, in a shuffled order, and reports the
// median time of each and what each adds to the bare call: the machine's
// noise hits all of them alike. Run with -benchtime=20000x or more.
func BenchmarkHTTPPaired(b *testing.B) {
	paired(b, httpVariants(b, okServer(b)))
}

func paired(b *testing.B, vs []variant) {
	ctx := context.Background()
	times := make([][]time.Duration, len(vs))
	// A call runs faster after some calls than after others: in an order
	// that rotated, each variant always following the same one, the bare
	// call measured twice differed by ~0.2 µs. The order is shuffled anew
	// every iteration.
	order := make([]int, len(vs))
	for j := range order {
		order[j] = j
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		for _, j := range order {
			start := time.Now()
			if err := vs[j].do(ctx); err != nil {
				b.Fatal(err)
			}
			times[j] = append(times[j], time.Since(start))
		}
	}
	med := make([]float64, len(vs))
	for j, ts := range times {
		slices.Sort(ts)
		med[j] = float64(ts[len(ts)/2].Nanoseconds())
		b.ReportMetric(med[j], vs[j].name+"-ns/call")
	}
	for j := 1; j < len(vs); j++ {
		b.ReportMetric(med[j]-med[0], vs[j].name+"-added-ns")
	}
}
