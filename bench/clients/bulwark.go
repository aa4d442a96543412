package clients

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/httpclient"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func bulwarkHTTPSpec() Spec {
	return Spec{
		Name:      "bulwark",
		Transport: HTTP,
		Bulwark:   true,
		Balances:  true,
		Config: "httpclient.Wrap(client, httpclient.Standard()) plus its cached fallback for GETs (Config.Fallback, defaults): " +
			"total timeout 30s, attempt timeout 10s, up to 3 attempts of idempotent requests with exponential backoff and full jitter from 50ms, " +
			"Retry-After honoured up to 30s, a retry budget of 20 % plus 10/s, a breaker per host (opens at >= 50 % failures of >= 20 calls in 30s, open 5s, 3 trials), " +
			"a bulkhead of 256 per host — plus what Standard's documentation says to add for a dependency that sheds load: an adaptive limit per instance " +
			"(bulkhead.AdaptiveConfig{InitialLimit: 4}, ceiling 256) and a breaker that waits for 100 calls; and its own balancer: a discovery.Balancer (power of two choices on peak-EWMA latency, outlier ejection, defaults) " +
			"over a static resolver of the endpoints, set as Config.Picker, so that each attempt goes to the instance the balancer picks and a retry goes to another one. " +
			"It fans out with fanout.Gather (a zero fanout.Config) to each endpoint as to a separate service (no balancer there), " +
			"answering with what arrived when the caller's deadline ends.",
		New: newBulwarkHTTP,
	}
}

type bulwarkHTTP struct {
	c        *http.Client // through the balancer
	t        *httpclient.Transport
	direct   *http.Client // to one endpoint at a time, for the fan-out's separate services
	directT  *httpclient.Transport
	balancer *discovery.Balancer
	base     *counting
	urls     []string
	br       breakerStates
	fan      *fanout.Fanout
	names    []string // a branch per endpoint
}

// service is the logical host the balanced client calls; the balancer
// replaces it with an instance's address.
const service = "http://bench-service"

func newBulwarkHTTP(e Endpoints, attempts *atomic.Int64) (Client, error) {
	b := &bulwarkHTTP{base: baseTransport(attempts), urls: e.HTTP}
	instances := make([]discovery.Instance, len(e.HTTP))
	for i, u := range e.HTTP {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, err
		}
		instances[i] = discovery.Instance{Addr: pu.Host}
	}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{"bench": instances})
	if err != nil {
		return nil, err
	}
	if b.balancer, err = discovery.NewBalancer(context.Background(), st, "bench", discovery.BalancerConfig{}); err != nil {
		return nil, err
	}
	cfg := httpclient.Standard()
	// What Standard's documentation says to add for a dependency that
	// sheds load: an adaptive limit per instance, starting low, and a
	// breaker that waits for 100 calls, so that the limit learns the
	// instance's capacity before the breaker judges its 503s.
	cfg.Bulkhead.Adaptive = &bulkhead.AdaptiveConfig{InitialLimit: 4}
	cfg.Breaker.MinimumCalls = 100
	cfg.Breaker.OnStateChange = b.br.observe
	cfg.Fallback = &httpclient.FallbackConfig{}
	direct := cfg
	cfg.Picker = b.balancer
	t, err := httpclient.New(b.base, cfg)
	if err != nil {
		return nil, errors.Join(err, b.balancer.Close())
	}
	b.t = t
	b.c = &http.Client{Transport: t}
	if b.directT, err = httpclient.New(b.base, direct); err != nil {
		return nil, errors.Join(err, t.Close(), b.balancer.Close())
	}
	b.direct = &http.Client{Transport: b.directT}
	if b.fan, err = fanout.New(fanout.Config{Name: "bench"}); err != nil {
		return nil, errors.Join(err, t.Close(), b.directT.Close(), b.balancer.Close())
	}
	for i := range e.HTTP {
		b.names = append(b.names, "endpoint-"+strconv.Itoa(i))
	}
	return b, nil
}

var errFailed = errors.New("clients: call failed")

// FanOut sends key to the first n endpoints with fanout.Gather, and
// succeeds when all but at most one answered.
func (b *bulwarkHTTP) FanOut(ctx context.Context, n int, key string) load.Outcome {
	g := b.fan.Gather()
	results := make([]*fanout.Result[load.Outcome], n)
	for i := range n {
		results[i] = fanout.Add(g, b.names[i%len(b.names)], nil, func(ctx context.Context) (load.Outcome, error) {
			if o := get(ctx, b.direct, pick(b.urls, i, key)); o != load.Failure {
				return o, nil
			}
			return load.Failure, errFailed
		})
	}
	_ = g.Run(ctx) // a *PartialError when a branch has no answer: counted below
	answered := 0
	for _, r := range results {
		if _, err := r.Get(); err == nil {
			answered++
		}
	}
	if answered >= n-1 {
		return load.Success
	}
	return load.Failure
}

// Call ignores the generator's endpoint: bulwark's balancer picks.
func (b *bulwarkHTTP) Call(ctx context.Context, _ int, key string) load.Outcome {
	return get(ctx, b.c, itemURL(service, key))
}

func (b *bulwarkHTTP) Breakers() (open, halfOpen int) { return b.br.counts() }

func (b *bulwarkHTTP) Close() error {
	b.t.CloseIdleConnections()
	return errors.Join(b.t.Close(), b.directT.Close(), b.balancer.Close())
}

// breakerStates follows the state of a breaker.Set's breakers from their
// events.
type breakerStates struct {
	mu     sync.Mutex
	states map[string]breaker.State
}

func (s *breakerStates) observe(e breaker.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = make(map[string]breaker.State)
	}
	s.states[e.Key] = e.To
}

func (s *breakerStates) counts() (open, halfOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.states {
		switch st {
		case breaker.Open:
			open++
		case breaker.HalfOpen:
			halfOpen++
		}
	}
	return open, halfOpen
}
