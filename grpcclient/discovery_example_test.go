package grpcclient_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

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
