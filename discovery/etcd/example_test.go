package etcd_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/bulwarkrpc/bulwark/discovery"
	"github.com/bulwarkrpc/bulwark/discovery/etcd"
)

func ExampleNewRegistry() {
	// An embedded etcd for the example; in production, the client URLs of
	// your etcd cluster.
	endpoint, stop := exampleServer()
	defer stop()

	reg, err := etcd.NewRegistry(etcd.Config{Endpoints: []string{endpoint}, LeaseTTL: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()

	// A server registers itself for as long as it runs...
	deregister, err := reg.Register(ctx, "users", discovery.Instance{
		Addr: "10.0.0.7:8080", Version: "1.4.2", Meta: map[string]string{"zone": "eu-1"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// ...and a client follows the instances of the service.
	watchCtx, cancel := context.WithCancel(ctx)
	sets := make(chan []discovery.Instance, 8)
	done := make(chan error)
	go func() {
		done <- reg.Watch(watchCtx, "users", func(set []discovery.Instance) { sets <- set })
	}()
	for _, inst := range <-sets {
		fmt.Println(inst.Addr, inst.Version, inst.Meta)
	}

	// The server leaves gracefully: the watch sees an empty set at once.
	if err := deregister(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(<-sets), "instances")
	cancel()
	<-done
	// Output:
	// 10.0.0.7:8080 1.4.2 map[zone:eu-1]
	// 0 instances
}

// exampleServer starts an etcd for an example and returns its client
// address and a function that stops it and removes its data.
func exampleServer() (endpoint string, stop func()) {
	dir, err := os.MkdirTemp("", "etcd-example")
	if err != nil {
		log.Fatal(err)
	}
	s, err := startServer(dir)
	if err != nil {
		log.Fatal(err)
	}
	return s.Endpoint, func() {
		s.Close()
		os.RemoveAll(dir)
	}
}
