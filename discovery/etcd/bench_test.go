package etcd_test

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery"
)

// fill stores n instances of "users" straight into etcd: their leases do
// not matter to a reader, and n leases would only slow the set-up.
func fill(b *testing.B, c *clientv3.Client, n int) {
	b.Helper()
	for i := range n {
		v := fmt.Sprintf(`{"addr":"10.0.%d.%d:8080","version":"1.4.2","weight":1,"meta":{"zone":"eu-%d"}}`, i/250, i%250, i%3)
		if _, err := c.Put(context.Background(), fmt.Sprintf("%s10.0.%d.%d:8080", key, i/250, i%250), v); err != nil {
			b.Fatalf("Put: %v", err)
		}
	}
}

// BenchmarkResolve compares Resolve, which reads, decodes and sorts the
// instances and keeps the set as a fallback, with the bare Get of the
// same keys that a user of the etcd client would write. Both go over
// loopback gRPC to an embedded etcd.
func BenchmarkResolve(b *testing.B) {
	for _, n := range []int{10, 1000} {
		s := newServer(b)
		c := newClient(b, s.Direct)
		fill(b, c, n)
		r := newRegistry(b, fastConfig(c, nil))
		resolve := func() {
			set, err := r.Resolve(context.Background(), "users")
			if err != nil || len(set) != n {
				b.Fatalf("Resolve: got %d instances, %v, want %d", len(set), err, n)
			}
		}
		get := func() {
			resp, err := c.Get(context.Background(), key, clientv3.WithPrefix())
			if err != nil || len(resp.Kvs) != n {
				b.Fatalf("Get: got %v, want %d keys", err, n)
			}
		}
		for _, bm := range []struct {
			name string
			f    func()
		}{{"Registry.Resolve", resolve}, {"clientv3.Get", get}} {
			b.Run(fmt.Sprintf("%s/n=%d", bm.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bm.f()
				}
			})
			b.Run(fmt.Sprintf("%s/n=%d/parallel", bm.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						bm.f()
					}
				})
			})
		}
	}
}

// BenchmarkWatchUpdate measures one change to a service of 1,000
// instances, from the Put that changes one instance to the moment the
// watcher has it: for Watch, the whole new set, decoded, sorted and
// handed to update; for the bare etcd watch, the raw event. The difference
// is what keeping the set costs. One watch passes its updates on one at a
// time, so there is no parallel variant: concurrent writers would measure
// etcd's batching, not the watch.
func BenchmarkWatchUpdate(b *testing.B) {
	const n = 1000
	s := newServer(b)
	c := newClient(b, s.Direct)
	fill(b, c, n)
	changed := key + "10.0.0.0:8080"
	value := func(i int) string {
		return fmt.Sprintf(`{"addr":"10.0.0.0:8080","weight":%d}`, i%2+1)
	}

	b.Run("Registry.Watch/n=1000", func(b *testing.B) {
		r := newRegistry(b, fastConfig(c, nil))
		ctx, cancel := context.WithCancel(context.Background())
		sets := make(chan []discovery.Instance, 1)
		done := make(chan error)
		go func() { done <- r.Watch(ctx, "users", func(set []discovery.Instance) { sets <- set }) }()
		defer func() { cancel(); <-done }()
		if set := <-sets; len(set) != n {
			b.Fatalf("first set: got %d instances, want %d", len(set), n)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := c.Put(ctx, changed, value(i)); err != nil {
				b.Fatalf("Put: %v", err)
			}
			if set := <-sets; set[0].Weight != i%2+1 {
				b.Fatalf("update: got weight %d, want %d", set[0].Weight, i%2+1)
			}
		}
	})
	b.Run("clientv3.Watch/n=1000", func(b *testing.B) {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		defer cancel()
		wch := c.Watch(ctx, key, clientv3.WithPrefix())
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := c.Put(ctx, changed, value(i)); err != nil {
				b.Fatalf("Put: %v", err)
			}
			if resp := <-wch; len(resp.Events) != 1 {
				b.Fatalf("event: got %d events, want 1", len(resp.Events))
			}
		}
	})
}
