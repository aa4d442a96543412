// Package bench is the root of bulwark's benchmark module, which measures
// what bulwark buys, side by side with the alternatives a Go user would
// pick. It holds no code; its packages are:
//
//   - fleet: fault-injecting HTTP and gRPC servers on loopback, following
//     a schedule of faults over time;
//   - load: an open-loop load generator (constant arrival rate, latency
//     from the intended start, HDR histograms per worker);
//   - clients: bulwark's clients and its peers', each configured as its
//     own documentation recommends;
//   - scenario: the scenarios, the runner, and the targets bulwark must meet;
//   - report: the text table, JSON and the HTML report with charts;
//   - overhead: paired A/B benchmarks of the clients and benchmarks of the
//     guards;
//   - cmd/bulwark-bench: the command (go run ./bench/cmd/bulwark-bench -quick).
package bench
