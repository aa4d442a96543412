package httpclient_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/semaphore"

	"github.com/bulwarkrpc/bulwark/httpclient"
)

// BenchmarkPaired makes, in every iteration, two bare calls, one call
// under a bare context.WithTimeout, one call through the Standard stack
// and one through the floor (the mandated parts composed by hand, see
// floor), against the same loopback server and over one pool of
// connections, timing each, in a shuffled order. It reports the medians
// and what each adds to the bare call: a ratio from one run, so the
// machine's noise hits all alike. Run with -benchtime=20000x or more.
func BenchmarkPaired(b *testing.B) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	base := srv.Client()
	wrapped, _ := srv.client(b, httpclient.Standard())
	floor := &http.Client{Transport: newFloor(base.Transport)}
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
	// The order is shuffled anew every iteration: a call runs faster after
	// some calls than after others, and in an order that rotated, each
	// variant always following the same one, the bare call measured twice
	// differed by itself. bare-again measures the bare call twice: what
	// two identical variants differ by is the noise of the measurement.
	clients := []struct {
		c       *http.Client
		timeout bool
	}{{base, false}, {base, false}, {base, true}, {wrapped, false}, {floor, false}}
	times := make([][]time.Duration, len(clients))
	order := []int{0, 1, 2, 3, 4}
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		for _, j := range order {
			times[j] = append(times[j], call(clients[j].c, clients[j].timeout))
		}
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Nanoseconds())
	}
	mb, ma, mt, ms, mf := med(times[0]), med(times[1]), med(times[2]), med(times[3]), med(times[4])
	b.ReportMetric(mb, "bare-ns")
	b.ReportMetric(ma-mb, "bare-again-added-ns")
	b.ReportMetric(mf-mb, "floor-added-ns")
	if mt > mb {
		b.ReportMetric((mf-mb)/(mt-mb), "floor/timeout")
	}
	b.ReportMetric(mt-mb, "timeout-added-ns")
	b.ReportMetric(ms-mb, "standard-added-ns")
	if mt > mb {
		b.ReportMetric((ms-mb)/(mt-mb), "standard/timeout")
	}
	b.ReportMetric(0, "ns/op") // the three medians above are the result
}

// floor is the least a RoundTripper built on the parts the stack must use
// can cost: one gobreaker TwoStep breaker and one x/sync semaphore (no key
// lookup, no metrics, released when RoundTrip returns rather than when the
// body is done) around a context.WithTimeout, written by hand.
type floor struct {
	next http.RoundTripper
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
	sem  *semaphore.Weighted
}

func newFloor(next http.RoundTripper) *floor {
	return &floor{next: next, cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{}), sem: semaphore.NewWeighted(256)}
}

func (f *floor) RoundTrip(req *http.Request) (*http.Response, error) {
	done, err := f.cb.Allow()
	if err != nil {
		return nil, err
	}
	if !f.sem.TryAcquire(1) {
		done(nil)
		return nil, errors.New("full")
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	resp, err := f.next.RoundTrip(req.WithContext(ctx))
	f.sem.Release(1)
	done(err)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody ends the attempt's context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
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

// roundTripFunc is a RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// BenchmarkMiddleware measures the middleware alone, over a RoundTripper
// that answers at once (it watches the request's context as a transport
// does): the floor (see floor), the Standard stack, and a bare
// context.WithTimeout, sequentially and in parallel.
func BenchmarkMiddleware(b *testing.B) {
	next := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		select { // a transport watches the request's context
		case <-req.Context().Done():
			return nil, req.Context().Err()
		default:
		}
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
	})
	std, err := httpclient.New(next, httpclient.Standard())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = std.Close() })
	withTimeout := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
		defer cancel()
		return next.RoundTrip(req.WithContext(ctx))
	})
	for _, v := range []struct {
		name string
		rt   http.RoundTripper
	}{
		{"bare", next},
		{"bare-context.WithTimeout", withTimeout},
		{"floor-by-hand", newFloor(next)},
		{"standard", std},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://api.example/x", nil)
		do := func() {
			resp, err := v.rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		b.Run(v.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				do()
			}
		})
		b.Run(v.name+"/par", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					do()
				}
			})
		})
	}
}
