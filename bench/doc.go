// Package bench measures what bulwark buys: a fault-injecting fleet of
// loopback servers, an open-loop load generator, scenarios, and peers run
// side by side against the same schedule of faults.
package bench
