package overhead_test

import (
	"context"
	"io"
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
	newBase := func() *http.Transport {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64 // RunParallel must not churn connections
		tb.Cleanup(t.CloseIdleConnections)
		return t
	}
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
	bare := &http.Client{Transport: newBase()}
	timed := &http.Client{Transport: newBase()}
	bt, err := httpclient.New(newBase(), httpclient.Standard())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { bt.Close() })
	fs := &http.Client{Transport: failsafehttp.NewRoundTripper(newBase(),
		failsafehttp.NewRetryPolicyBuilder().WithBackoff(time.Second, 30*time.Second).WithMaxRetries(3).Build(),
		circuitbreaker.NewBuilder[*http.Response]().WithFailureThreshold(5).WithSuccessThreshold(2).WithDelay(5*time.Second).Build(),
		bulkhead.New[*http.Response](256),
		timeout.New[*http.Response](10*time.Second),
	)}
	return []variant{
		{"bare", get(bare)},
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
// on the same loopback server, in an order that rotates, and reports the
// median time of each and what each adds to the bare call: the machine's
// noise hits all of them alike. Run with -benchtime=20000x or more.
func BenchmarkHTTPPaired(b *testing.B) {
	paired(b, httpVariants(b, okServer(b)))
}

func paired(b *testing.B, vs []variant) {
	ctx := context.Background()
	times := make([][]time.Duration, len(vs))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for k := range vs {
			j := (i + k) % len(vs)
			start := time.Now()
			if err := vs[j].do(ctx); err != nil {
				b.Fatal(err)
			}
			times[j] = append(times[j], time.Since(start))
		}
		i++
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
