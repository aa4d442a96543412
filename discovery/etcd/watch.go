package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/bulwarkrpc/bulwark/discovery"
)

// Resolve returns the instances of service, sorted by address: one Get of
// its keys, bounded by ctx and Config.RequestTimeout. A stored value that
// is no readable instance is skipped and counted. When etcd does not
// answer, Resolve returns the last set this Registry knew of service (from
// a Resolve or a Watch) with a nil error, or an error if it knew none. No
// instance registered is an empty set and a nil error.
//
// The slice is the caller's; the Meta maps are shared and must not be
// modified.
func (r *Registry) Resolve(ctx context.Context, service string) ([]discovery.Instance, error) {
	if err := checkService(service); err != nil {
		return nil, err
	}
	if !r.enter() {
		return nil, ErrClosed
	}
	defer r.wg.Done()
	s := r.service(service)
	gctx, cancel := r.request(ctx)
	resp, err := r.client.Get(gctx, r.key(service), clientv3.WithPrefix())
	cancel()
	if err != nil {
		if last := s.known(); last != nil {
			return slices.Clone(last), nil
		}
		return nil, fmt.Errorf("etcd: resolving %q: %w", service, err)
	}
	list, n := decodeAll(resp.Kvs)
	if n > 0 {
		r.m.invalid.Add(ctx, int64(n), s.attrs)
	}
	s.store(list, resp.Header.Revision)
	return slices.Clone(list), nil
}

// Watch calls update with the instances of service, sorted by address, at
// once and after every change, until ctx ends or the Registry is closed;
// then it returns, nil or ErrClosed. update runs on Watch's goroutine, one
// call at a time, and Close waits for it. It gets a new slice each time,
// its own; the Meta maps are shared and must not be modified. An update
// that changes nothing (an instance registered again with the same value)
// is not passed on; the removal of the last instance is, as an empty set.
//
// Watch reads the keys with a Get, then watches them from that revision.
// Every Config.ProgressInterval it asks etcd to confirm that the watch is
// current; the metric bulwark.discovery.etcd.staleness reports the time
// since the last confirmation. When the watch breaks (its revision
// compacted away, its leader lost, its channel closed, or three intervals
// without a confirmation, as while etcd is down) Watch reads and watches
// again, retrying with backoff while etcd does not answer; meanwhile
// update's last set stands. If the first read fails, update gets the last
// set the Registry knew of service, or an empty one, so that a caller
// never waits on etcd for a first answer; the real set follows when etcd
// answers.
//
// Watch returns an error at once for an empty or malformed service name or
// a nil update, and ErrClosed on a closed Registry.
func (r *Registry) Watch(ctx context.Context, service string, update func([]discovery.Instance)) error {
	if err := checkService(service); err != nil {
		return err
	}
	if update == nil {
		return errors.New("etcd: Watch's update is nil")
	}
	if ctx.Err() != nil {
		return nil
	}
	if !r.enter() {
		return ErrClosed
	}
	defer r.wg.Done()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	s := r.watching(service)
	defer r.unwatching(s)
	w := &watcher{r: r, s: s, prefix: r.key(service), update: update, id: strconv.FormatUint(r.watches.Add(1), 10)}
	w.run(wctx)
	if ctx.Err() == nil {
		return ErrClosed
	}
	return nil
}

// watcher is one Watch call's state; its goroutine owns it.
type watcher struct {
	r         *Registry
	id        string // the Watch call's number, naming its gRPC stream
	s         *service
	prefix    string
	update    func([]discovery.Instance)
	set       instanceSet
	last      []discovery.Instance // as last passed to update; never modified
	delivered bool                 // update was called
}

// run reads and watches until ctx ends.
func (w *watcher) run(ctx context.Context) {
	var b backoff
	defer b.stop()
	for {
		rev, err := w.sync(ctx)
		if err == nil {
			why, healthy := w.follow(ctx, rev)
			if ctx.Err() != nil {
				return
			}
			w.r.m.rewatches.Add(ctx, 1, w.s.rewatch[why])
			if healthy {
				b.reset()
			}
			if why == reasonCompacted && b.n == 0 {
				// A watch that worked fell behind a compaction: the keys
				// are there to be read again at once.
				continue
			}
		} else if ctx.Err() != nil {
			return
		} else if !w.delivered {
			// etcd does not answer, and the caller waits for a first set:
			// the last one known, or none.
			w.deliver(w.s.known(), 0)
		}
		if !b.wait(ctx) {
			return
		}
	}
}

// sync reads the keys, passes their set on and returns their revision.
func (w *watcher) sync(ctx context.Context) (int64, error) {
	gctx, cancel := w.r.request(ctx)
	resp, err := w.r.client.Get(gctx, w.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return 0, err
	}
	if n := w.set.reset(resp.Kvs); n > 0 {
		w.r.m.invalid.Add(ctx, int64(n), w.s.attrs)
	}
	w.s.confirm(time.Now())
	if !w.delivered || !equal(w.set.list, w.last) {
		w.deliver(w.set.list, resp.Header.Revision)
	}
	return resp.Header.Revision, nil
}

// follow watches the keys from revision rev, passing every change on,
// until the watch ends or ctx does. It returns why the watch ended and
// whether it had worked (answered at all) before.
//
// The watch starts at the revision of the read, not the one after: etcd
// confirms no watch that starts beyond its current revision, which on an
// idle store would be every watch. The events of that revision are in the
// read already, and are skipped.
func (w *watcher) follow(ctx context.Context, rev int64) (why reason, healthy bool) {
	// WithRequireLeader: a member cut off from its cluster's leader
	// cancels the watch, where it would otherwise keep it open and silent.
	// The metadata gives the Watch call a gRPC stream of its own: etcd
	// confirms the watches of a stream only when every one of them can be,
	// and the client keeps one stream per distinct metadata.
	wctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), streamKey, w.id))
	var probe sync.WaitGroup
	defer probe.Wait()
	defer cancel()
	wch := w.r.client.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	probe.Go(func() { w.probe(wctx) })
	// A watch that etcd no longer confirms is started again (and its read
	// done again), whatever the reason: the etcd client resumes a broken
	// stream beyond the current revision, where etcd confirms nothing.
	interval := w.r.cfg.ProgressInterval
	check := time.NewTicker(interval)
	defer check.Stop()
	heard := time.Now()
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case resp, ok = <-wch:
		case now := <-check.C:
			if now.Sub(heard) > silence*interval {
				return reasonSilent, healthy
			}
			continue
		case <-ctx.Done():
			return reasonClosed, healthy
		}
		switch {
		case !ok:
			return reasonClosed, healthy
		case resp.CompactRevision != 0:
			return reasonCompacted, healthy
		case resp.Canceled || resp.Err() != nil:
			return reasonError, healthy
		}
		healthy = true
		heard = time.Now()
		w.s.confirm(heard)
		if len(resp.Events) == 0 {
			continue // a progress notification: confirmed, nothing changed
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision <= rev {
				continue // in the read already
			}
			if !w.set.apply(ev) {
				w.r.m.invalid.Add(ctx, 1, w.s.attrs)
			}
		}
		if w.set.commit() {
			w.deliver(w.set.list, resp.Header.Revision)
		}
	}
}

const (
	// silence is how many Config.ProgressIntervals a watch may go
	// unconfirmed before it is started again.
	silence = 3
	// streamKey is the gRPC metadata key naming a Watch call's stream.
	streamKey = "bulwark-watch"
)

// probe asks etcd every Config.ProgressInterval to confirm that the watches
// on ctx's stream are current, until ctx ends. While etcd is unreachable a
// request waits for the stream to come back; the confirmation then
// arrives on the watch channel.
func (w *watcher) probe(ctx context.Context) {
	t := time.NewTicker(w.r.cfg.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			// RequestProgress would open a stream of its own for a ctx
			// whose watch is gone, which would last as long as the client.
			return
		}
		// The error is ctx's, or the watch stream's, which the watch
		// channel reports too.
		_ = w.r.client.RequestProgress(ctx)
	}
}

// deliver passes list, read at revision rev (0 if not read), to update and
// keeps it as the last set known. list must not be modified afterwards.
func (w *watcher) deliver(list []discovery.Instance, rev int64) {
	if list == nil {
		list = []discovery.Instance{}
	}
	if rev > 0 {
		w.s.store(list, rev)
	}
	w.last, w.delivered = list, true
	w.update(slices.Clone(list))
}
