package discovery

// Update hands insts to b as its Resolver's Watch would: benchmarks
// measure it without a goroutine in between.
func Update(b *Balancer, insts []Instance) { b.update(insts) }

// Stripe switches b's current snapshot to striped round robin, as picks
// contending on several cores do, so that tests need not rely on the
// machine to contend.
func Stripe(b *Balancer) { b.snap.Load().striped.Store(true) }
