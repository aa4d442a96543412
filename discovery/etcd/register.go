package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery"
)

// Register publishes inst as an instance of service: the key
// Config.Prefix+service+"/"+inst.Addr, holding inst as JSON (address,
// version, weight and metadata), attached to a lease of Config.LeaseTTL
// that a goroutine keeps alive. If the lease is lost (etcd restarted
// without it, or it expired while this process could not reach etcd), the
// goroutine registers inst again under a new lease as soon as etcd
// answers. When the process dies the keepalives stop and etcd deletes the
// key LeaseTTL later.
//
// deregister revokes the lease, which deletes the key at once, and stops
// the goroutine; it returns the revocation's error (the key then goes when
// its lease expires). Called again, it does nothing and returns what the
// first call returned: nil after a revocation that succeeded. Close
// deregisters every instance still registered, and waits for a
// deregistration under way.
//
// Register returns an error, and registers nothing, for an empty or
// malformed service name, an invalid instance (an empty or malformed
// address, a negative weight, a version that does not parse: an error
// matching discovery.ErrInvalidInstance), an address this
// Registry has registered in service already (deregister it first), a
// closed Registry (ErrClosed), or when etcd did not grant the lease and
// store the key within ctx and Config.RequestTimeout.
func (r *Registry) Register(ctx context.Context, service string, inst discovery.Instance) (deregister func(context.Context) error, err error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	if err := checkInstance(inst); err != nil {
		return nil, err
	}
	val, err := encode(inst)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g := &registration{r: r, s: r.service(service), key: r.key(service) + inst.Addr, val: val, done: make(chan struct{})}
	if err := r.reserve(g.key); err != nil {
		return nil, err
	}
	g.ctx, g.cancel = context.WithCancel(r.ctx)
	ka, err := g.publish(ctx)
	if err != nil {
		g.cancel()
		r.release(g.key)
		return nil, fmt.Errorf("etcd: registering %q in %q: %w", inst.Addr, service, err)
	}
	r.mu.Lock()
	if r.closed {
		// Close began meanwhile and will not see g: undo it here.
		r.mu.Unlock()
		g.cancel()
		rctx, cancel := r.request(ctx)
		defer cancel()
		r.client.Revoke(rctx, g.lease)
		r.release(g.key)
		return nil, ErrClosed
	}
	r.regs[g.key] = g
	r.mu.Unlock()
	go g.run(ka)
	return g.deregister, nil
}

// registration is one registered instance and the goroutine keeping it.
type registration struct {
	r        *Registry
	s        *service
	key, val string
	// ctx is the registration's lifetime: the keepalives live as long as
	// it, and deregister cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	lease  clientv3.LeaseID

	once sync.Once
	err  error
}

// publish grants a lease, stores the key under it and starts keeping it
// alive, within ctx and Config.RequestTimeout; on success it records the
// lease and returns the keepalive channel.
func (g *registration) publish(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	ctx, cancel := g.r.request(ctx)
	defer cancel()
	c := g.r.client
	l, err := c.Grant(ctx, g.r.ttl)
	if err != nil {
		return nil, fmt.Errorf("granting lease: %w", err)
	}
	if _, err := c.Put(ctx, g.key, g.val, clientv3.WithLease(l.ID)); err != nil {
		// Best effort: a lease left behind expires by itself.
		c.Revoke(ctx, l.ID)
		return nil, fmt.Errorf("putting %q: %w", g.key, err)
	}
	ka, err := c.KeepAlive(g.ctx, l.ID)
	if err != nil {
		c.Revoke(ctx, l.ID)
		return nil, fmt.Errorf("keeping lease alive: %w", err)
	}
	old := g.lease
	g.lease = l.ID
	if old != 0 {
		// The key now hangs on the new lease, so revoking the old one,
		// should etcd still have it, deletes nothing.
		c.Revoke(ctx, old)
	}
	return ka, nil
}

// run drains the keepalive responses until the lease is lost, registers
// again, and so on until the registration ends.
func (g *registration) run(ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer g.r.wg.Done()
	defer close(g.done)
	var b backoff
	defer b.stop()
	for {
		for range ka {
			// The etcd client closes ka when the lease is gone, when no
			// keepalive has been answered for the lease's TTL, or when
			// g.ctx ends.
		}
		if g.ctx.Err() != nil {
			return
		}
		g.r.m.reregistrations.Add(g.ctx, 1, g.s.attrs)
		for {
			var err error
			if ka, err = g.publish(g.ctx); err == nil {
				break
			}
			if !b.wait(g.ctx) {
				return
			}
		}
		b.reset()
	}
}

// deregister stops the registration and revokes its lease, once.
func (g *registration) deregister(ctx context.Context) error {
	g.once.Do(func() {
		g.cancel()
		<-g.done
		rctx, cancel := g.r.request(ctx)
		defer cancel()
		_, err := g.r.client.Revoke(rctx, g.lease)
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			g.err = fmt.Errorf("etcd: deregistering %q: %w", g.key, err)
		}
		// Only once the revocation is over: until then a Close must find
		// g, and wait for it here, rather than close the client under it.
		g.r.mu.Lock()
		delete(g.r.regs, g.key)
		g.r.mu.Unlock()
	})
	return g.err
}

// reserve claims key for a registration being made, counting it for
// Close. It refuses a key this Registry has registered already: two
// registrations of one key would share it, and the first deregistered
// would delete the other's.
func (r *Registry) reserve(key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if _, ok := r.regs[key]; ok {
		return fmt.Errorf("etcd: %q is registered already by this Registry", key)
	}
	r.regs[key] = nil
	r.wg.Add(1)
	return nil
}

// release undoes reserve for a registration that was not made.
func (r *Registry) release(key string) {
	r.mu.Lock()
	delete(r.regs, key)
	r.mu.Unlock()
	r.wg.Done()
}
