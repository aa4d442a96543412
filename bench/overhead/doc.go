// Package overhead holds the benchmarks of what each client adds to a
// call, and of the guards alone: bulwark's against the alternatives a user
// would pick, side by side in one run so that a comparison is a ratio.
// It has no code of its own; run it with bench/scripts/overhead, which
// summarises with benchstat:
//
//	go test -run '^$' -bench . -benchtime 20000x -count 6 ./bench/overhead/
//
// Sub-benchmarks are named impl=<what>/mode=<seq|par> so that
// `benchstat -col /impl` lays the implementations side by side.
package overhead
