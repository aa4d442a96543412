package discovery

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/bulwarkrpc/bulwark"
)

// eject ejects ep for reason, if it may be.
func (b *Balancer) eject(ep *endpoint, reason string) {
	b.mu.Lock()
	ok := b.ejectLocked(ep, time.Now())
	if ok {
		b.rebuild()
	}
	b.mu.Unlock()
	if ok {
		b.inst.ejectedOnce(reason)
		b.wakeUp()
	}
}

// ejectLocked ejects ep at now unless it is gone, ejected already, or the
// cap of ejected instances is reached; it reports whether it did. The
// caller rebuilds the snapshot. b.mu is held.
func (b *Balancer) ejectLocked(ep *endpoint, now time.Time) bool {
	if ep.removed || ep.ejected {
		return false
	}
	if b.ejectedN >= max(1, int(b.cfg.maxEjected*float64(len(b.endpoints)))) {
		return false
	}
	if ep.ejections > 0 { // one off for each BaseTime back in service
		back := now.Sub(ep.returned) / b.cfg.base
		ep.ejections = max(0, ep.ejections-int(min(back, math.MaxInt32)))
	}
	// Past MaxTime the count no longer matters; capping it keeps the
	// product below overflow.
	ep.ejections = min(ep.ejections+1, int(b.cfg.max/b.cfg.base)+1)
	ep.ejected, ep.until = true, now.Add(min(b.cfg.base*time.Duration(ep.ejections), b.cfg.max))
	ep.consecutive.Store(0)
	ep.judged = [2]uint64{ep.ended[bulwark.Success].Load(), ep.ended[bulwark.Failure].Load()}
	b.ejectedN++
	return true
}

// wakeUp tells maintain that the next return may be earlier than it
// thinks.
func (b *Balancer) wakeUp() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// maintain brings ejected instances back when their time is up and judges
// success rates every Interval, until ctx ends.
func (b *Balancer) maintain(ctx context.Context) {
	rates := b.cfg.successRate()
	var judgeAt time.Time
	if rates {
		judgeAt = time.Now().Add(b.cfg.interval)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due := b.nextReturn()
		if rates && (due.IsZero() || judgeAt.Before(due)) {
			due = judgeAt
		}
		var fire <-chan time.Time
		if !due.IsZero() {
			timer.Reset(time.Until(due))
			fire = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
			continue
		case <-fire:
		}
		now := time.Now()
		b.returnDue(now)
		if rates && !now.Before(judgeAt) {
			b.judgeRates(now)
			judgeAt = now.Add(b.cfg.interval)
		}
	}
}

// nextReturn returns when the first ejected instance comes back; zero when
// none is ejected.
func (b *Balancer) nextReturn() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	var next time.Time
	if b.ejectedN == 0 {
		return next
	}
	for _, ep := range b.endpoints {
		if ep.ejected && (next.IsZero() || ep.until.Before(next)) {
			next = ep.until
		}
	}
	return next
}

// returnDue brings back every instance whose ejection ended by now.
func (b *Balancer) returnDue(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	back := false
	for _, ep := range b.endpoints {
		if ep.ejected && !now.Before(ep.until) {
			ep.ejected, ep.returned = false, now
			ep.consecutive.Store(0)
			ep.forget()
			b.ejectedN--
			back = true
		}
	}
	if back {
		b.rebuild()
	}
}

// judgeRates applies the success-rate rules to the attempts that ended
// since the last judgement, and starts counting afresh.
func (b *Balancer) judgeRates(now time.Time) {
	type judged struct {
		ep   *endpoint
		rate float64 // of success
	}
	var reasons []string
	b.mu.Lock()
	var all []judged
	for _, ep := range b.endpoints {
		ok, failed := ep.ended[bulwark.Success].Load(), ep.ended[bulwark.Failure].Load()
		s, f := ok-ep.judged[0], failed-ep.judged[1]
		ep.judged = [2]uint64{ok, failed}
		if ep.ejected || s+f == 0 || s+f < b.cfg.minRequests {
			continue
		}
		all = append(all, judged{ep, float64(s) / float64(s+f)})
	}
	// The worst first: the cap on ejections spares the better ones.
	slices.SortFunc(all, func(x, y judged) int { return cmp.Compare(x.rate, y.rate) })
	if b.cfg.failRatio > 0 {
		for _, j := range all {
			if 1-j.rate >= b.cfg.failRatio && b.ejectLocked(j.ep, now) {
				reasons = append(reasons, reasonFailureRatio)
			}
		}
	}
	if b.cfg.stdev >= 0 && len(all) >= b.cfg.minHosts && len(all) > 0 {
		mean := 0.0
		for _, j := range all {
			mean += j.rate
		}
		mean /= float64(len(all))
		variance := 0.0
		for _, j := range all {
			variance += (j.rate - mean) * (j.rate - mean)
		}
		threshold := mean - b.cfg.stdev*math.Sqrt(variance/float64(len(all)))
		for _, j := range all {
			if j.rate < threshold && b.ejectLocked(j.ep, now) {
				reasons = append(reasons, reasonSuccessRate)
			}
		}
	}
	if len(reasons) > 0 {
		b.rebuild()
	}
	b.mu.Unlock()
	for _, r := range reasons {
		b.inst.ejectedOnce(r)
	}
}
