package clients

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/grpcclient"

	"github.com/bulwarkrpc/bulwark/bench/load"
)

func bulwarkGRPCSpec() Spec {
	return Spec{
		Name:      "bulwark-grpc",
		Transport: GRPC,
		Bulwark:   true,
		Balances:  true,
		Config: "grpcclient.Standard() — attempt timeout 10s (sent to the server), total 30s, a breaker per method (>= 50 % failures of >= 20 calls in 30s, open 5s, 3 trials), " +
			"a bulkhead of 256 per method, grpc-go's retry throttling (10 tokens, 0.1 per success) — plus what Standard says to add for a method safe to repeat: " +
			"grpc-go's retry policy with grpcclient's defaults (3 attempts on UNAVAILABLE, backoff from 100ms), and a cached fallback of the last good reply. " +
			"Balanced by grpcclient.DiscoveryDialOptions over a discovery.Static list of the endpoints: peak-EWMA power of two choices with outlier ejection (discovery's defaults), fed by each attempt's outcome, " +
			"with an adaptive limit per instance in the picker (DiscoveryConfig.Bulkhead: bulkhead.AdaptiveConfig{InitialLimit: 4}, ceiling 256), as the HTTP client has: " +
			"an instance at its limit is passed over for another, and when all are, the call is refused at once (ResourceExhausted, not counted by the method's breaker).",
		New: newBulwarkGRPC,
	}
}

type bulwarkGRPC struct {
	*grpcClient
	ic *grpcclient.Interceptors
	db *discovery.Balancer
	br breakerStates
}

func newBulwarkGRPC(e Endpoints, attempts *atomic.Int64) (Client, error) {
	b := &bulwarkGRPC{}
	cfg := grpcclient.Standard()
	cfg.Breaker.OnStateChange = b.br.observe
	cfg.ServiceConfig.MethodConfig = []grpcclient.MethodConfig{{
		Name:        []grpcclient.Name{{Service: "grpc.testing.TestService"}},
		RetryPolicy: &grpcclient.RetryPolicy{},
	}}
	cfg.Methods = map[string]grpcclient.Method{
		testgrpc.TestService_UnaryCall_FullMethodName: {Fallback: &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{}}},
	}
	ic, err := grpcclient.New(cfg)
	if err != nil {
		return nil, err
	}
	// What suits a dependency that sheds load, as for the HTTP client: an
	// adaptive limit per instance, starting low. It sits in the picker,
	// below the interceptors, which key their guards by method.
	limit := &bulkhead.Config{Limit: 256, Adaptive: &bulkhead.AdaptiveConfig{InitialLimit: 4}}
	g, db, err := newDiscoveryConn(e.GRPC, attempts, ic, limit)
	if err != nil {
		return nil, errors.Join(err, ic.Close())
	}
	b.grpcClient, b.ic, b.db = g, ic, db
	return b, nil
}

// newDiscoveryConn connects to addrs, listed by a discovery.Static under
// one service, through ic and the discovery balancer, with limit per
// instance (nil: none).
func newDiscoveryConn(addrs []string, attempts *atomic.Int64, ic *grpcclient.Interceptors, limit *bulkhead.Config) (*grpcClient, *discovery.Balancer, error) {
	const service = "fleet"
	insts := make([]discovery.Instance, len(addrs))
	for i, a := range addrs {
		insts[i] = discovery.Instance{Addr: a}
	}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{service: insts})
	if err != nil {
		return nil, nil, err
	}
	opts, db, err := grpcclient.DiscoveryDialOptions(context.Background(), st, service,
		grpcclient.DiscoveryConfig{ServiceConfig: ic.ServiceConfig(), Bulkhead: limit})
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, ic.DialOptions()...)
	opts = append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(attemptCounter{attempts}))
	conn, err := grpc.NewClient(grpcclient.DiscoveryTarget(service), opts...)
	if err != nil {
		return nil, nil, errors.Join(err, db.Close())
	}
	return &grpcClient{conn: conn, c: testgrpc.NewTestServiceClient(conn)}, db, nil
}

func (b *bulwarkGRPC) Call(ctx context.Context, _ int, _ string) load.Outcome {
	var note fallback.Note
	if _, err := b.c.UnaryCall(fallback.WithNote(ctx, &note), &testgrpc.SimpleRequest{ResponseSize: 256}); err != nil {
		return load.Failure
	}
	if note.Source.Fallback() {
		return load.Fallback
	}
	return load.Success
}

func (b *bulwarkGRPC) Breakers() (open, halfOpen int) { return b.br.counts() }

func (b *bulwarkGRPC) Close() error {
	return errors.Join(b.conn.Close(), b.db.Close(), b.ic.Close())
}
