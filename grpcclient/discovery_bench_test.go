package grpcclient_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

// BenchmarkDiscoveryUnary compares a unary call over 3 loopback servers
// balanced by the discovery balancer with the same call balanced by
// grpc-go's round_robin over the same resolver: the cost of a pick, its
// report, and the one allocation of the picker's Done. The
// bulwark_discovery_bulkhead variant adds an adaptive limit per instance
// (DiscoveryConfig.Bulkhead), as the benchmark's bulwark-grpc client has
// it: entering and releasing a slot, and the limit's learning. The calls
// never reach the limit (one or GOMAXPROCS at a time): it is the cost of
// an admission, not of a refusal.
func BenchmarkDiscoveryUnary(b *testing.B) {
	servers := make([]*server, 3)
	for i := range servers {
		servers[i] = newServer(b, nil)
	}
	st := staticOf(b, servers)
	opts, db, err := grpcclient.DiscoveryDialOptions(b.Context(), st, discoService, grpcclient.DiscoveryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	limited, dbLimited, err := grpcclient.DiscoveryDialOptions(b.Context(), st, discoService, grpcclient.DiscoveryConfig{
		Bulkhead: &bulkhead.Config{Adaptive: &bulkhead.AdaptiveConfig{InitialLimit: 4}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = dbLimited.Close() })
	clients := []struct {
		name string
		opts []grpc.DialOption
	}{
		{"bulwark_discovery", opts},
		{"bulwark_discovery_bulkhead", limited},
		{"round_robin", []grpc.DialOption{grpc.WithResolvers(grpcclient.Resolver(st, discoService)),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)}},
	}
	for _, c := range clients {
		conn, err := grpc.NewClient(grpcclient.DiscoveryTarget(discoService),
			append(c.opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = conn.Close() })
		client := testpb.NewTestServiceClient(conn)
		req := request("x", codes.OK)
		ctx := context.Background()
		if _, err := client.UnaryCall(ctx, req); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.UnaryCall(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.UnaryCall(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
