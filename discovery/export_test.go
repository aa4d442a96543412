package discovery

// Update hands insts to b as its Resolver's Watch would: benchmarks
// measure it without a goroutine in between.
func Update(b *Balancer, insts []Instance) { b.update(insts) }
