package grpcclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

func ExampleDiscoveryDialOptions() {
	// Two instances of "echo" on loopback ports.
	var addrs []string
	for range 2 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		srv := grpc.NewServer()
		testpb.RegisterTestServiceServer(srv, &service{})
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
		addrs = append(addrs, lis.Addr().String())
	}
	r, err := discovery.NewStatic(map[string][]discovery.Instance{
		"echo": {{Addr: addrs[0]}, {Addr: addrs[1]}},
	})
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	opts, db, err := grpcclient.DiscoveryDialOptions(ctx, r, "echo", grpcclient.DiscoveryConfig{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	conn, err := grpc.NewClient(grpcclient.DiscoveryTarget("echo"),
		append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	c := testpb.NewTestServiceClient(conn)
	for range 10 {
		if _, err := c.EmptyCall(ctx, &testpb.Empty{}); err != nil {
			panic(err)
		}
	}
	var ended uint64
	for _, s := range db.Status() {
		ended += s.Successes
	}
	fmt.Println("successes reported to the balancer:", ended)
	// Output: successes reported to the balancer: 10
}

func ExampleResolver() {
	r, err := discovery.NewStatic(map[string][]discovery.Instance{"echo": nil})
	if err != nil {
		panic(err)
	}
	// grpc-go's round_robin over the instances r lists; no instance yet,
	// so the call fails at once.
	conn, err := grpc.NewClient(grpcclient.DiscoveryTarget("echo"),
		grpc.WithResolvers(grpcclient.Resolver(r, "echo")),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	_, err = testpb.NewTestServiceClient(conn).EmptyCall(context.Background(), &testpb.Empty{})
	fmt.Println(err != nil)
	// Output: true
}

// gated holds every UnaryCall until open is closed, announcing each on
// arrived.
type gated struct {
	testpb.UnimplementedTestServiceServer
	arrived chan struct{}
	open    chan struct{}
}

func (g *gated) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	g.arrived <- struct{}{}
	select {
	case <-g.open:
	case <-ctx.Done():
	}
	return &testpb.SimpleResponse{}, nil
}

func ExampleDiscoveryConfig_bulkhead() {
	// One instance of "echo", which holds its calls until told.
	g := &gated{arrived: make(chan struct{}, 8), open: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	r, err := discovery.NewStatic(map[string][]discovery.Instance{"echo": {{Addr: lis.Addr().String()}}})
	if err != nil {
		panic(err)
	}

	// An adaptive limit per instance, starting at 4 attempts at once; its
	// metrics, read here, say where each instance's limit stands.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	ctx := context.Background()
	opts, db, err := grpcclient.DiscoveryDialOptions(ctx, r, "echo", grpcclient.DiscoveryConfig{
		Bulkhead: &bulkhead.Config{Adaptive: &bulkhead.AdaptiveConfig{InitialLimit: 4}, MeterProvider: mp},
	})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	conn, err := grpc.NewClient(grpcclient.DiscoveryTarget("echo"),
		append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)

	// Four calls take the instance's four slots...
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, _ = c.UnaryCall(ctx, &testpb.SimpleRequest{}) })
		<-g.arrived
	}
	// ...and a fifth, with no other instance to go to, is refused at once.
	_, err = c.UnaryCall(ctx, &testpb.SimpleRequest{})
	fmt.Println(status.Code(err), errors.Is(err, bulkhead.ErrFull))
	close(g.open)
	wg.Wait()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "bulwark.bulkhead.limit" {
				fmt.Println("limit:", m.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
			}
		}
	}
	// Output:
	// ResourceExhausted true
	// limit: 4
}
