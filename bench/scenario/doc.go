// Package scenario defines the benchmark's scenarios — each a fleet and a
// schedule of faults — runs every client through each of them on fleets of
// their own following the same schedule, and checks bulwark's clients
// against the targets they must meet.
package scenario
