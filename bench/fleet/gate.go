package fleet

import (
	"context"
	"slices"
	"sync"
	"time"
)

// gate admits at most a Behavior's Capacity requests at once and queues a
// bounded number more, first come first served. Its limits are given on
// each call, so that a change of Behavior takes effect at once.
type gate struct {
	mu    sync.Mutex
	busy  int             // requests admitted and not yet gone
	queue []chan struct{} // waiters, first first; closing one hands it a slot
}

func newGate() *gate { return &gate{} }

func (g *gate) lock()   { g.mu.Lock() }
func (g *gate) unlock() { g.mu.Unlock() }

// enter admits one request under b's limits. It reports whether the
// request was admitted; an admitted request must call leave. quit ends a
// wait like ctx does.
func (g *gate) enter(ctx context.Context, b *Behavior, quit <-chan struct{}) bool {
	g.lock()
	if g.busy < b.Capacity && len(g.queue) == 0 {
		g.busy++
		g.unlock()
		return true
	}
	if len(g.queue) >= b.Queue {
		g.unlock()
		return false
	}
	ch := make(chan struct{})
	g.queue = append(g.queue, ch)
	g.unlock()

	var timeout <-chan time.Time
	if b.QueueTimeout > 0 {
		t := time.NewTimer(b.QueueTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
	case <-quit:
	case <-timeout:
	}
	g.lock()
	if i := slices.Index(g.queue, ch); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
		g.unlock()
		return false
	}
	g.unlock()
	// The slot was handed over while we gave up: pass it on.
	g.leave()
	return false
}

// leave gives the slot of an admitted request to the first in the queue,
// or frees it.
func (g *gate) leave() {
	g.lock()
	defer g.unlock()
	if len(g.queue) > 0 {
		close(g.queue[0])
		g.queue = g.queue[1:]
		return
	}
	g.busy--
}
