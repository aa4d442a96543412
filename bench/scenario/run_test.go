package scenario_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/clients"
	"github.com/bulwarkrpc/bulwark/bench/scenario"
)

// A short real run of one scenario: a fleet per client on loopback, the
// load, the summary and the series.
func TestRunEndToEnd(t *testing.T) {
	scens, err := scenario.Lookup([]string{"refusing"})
	if err != nil {
		t.Fatal(err)
	}
	specs, err := clients.Lookup([]string{"naive", "bulwark", "grpc-go"})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	rep := scenario.Run(t.Context(), scenario.Options{
		Scenarios: scens, Clients: specs, Duration: time.Second, Rate: 50,
		Progress: &progress, ProgressEvery: 200 * time.Millisecond,
	})
	if rep.Interrupted || len(rep.Scenarios) != 1 {
		t.Fatalf("got interrupted %v with %d scenarios, want one complete", rep.Interrupted, len(rep.Scenarios))
	}
	runs := rep.Scenarios[0].Runs
	if len(runs) != 3 {
		t.Fatalf("got %d runs, want 3", len(runs))
	}
	for _, r := range runs {
		if r.Error != "" {
			t.Fatalf("%s: %s", r.Client, r.Error)
		}
		if r.Offered != 50 || r.Success+r.Fallback+r.Failure != 50 {
			t.Errorf("%s: got %d offered, %d+%d+%d, want 50 in all", r.Client, r.Offered, r.Success, r.Fallback, r.Failure)
		}
		if len(r.Series) != 10 || r.P50 <= 0 || r.P99 < r.P50 || r.Attempts == 0 {
			t.Errorf("%s: got %d points, p50 %v, p99 %v, %d attempts", r.Client, len(r.Series), r.P50, r.P99, r.Attempts)
		}
		var arrived int64
		for _, a := range r.Arrivals {
			arrived += a
		}
		if len(r.Arrivals) != 3 || r.Arrivals[0] != 0 || arrived == 0 {
			t.Errorf("%s: got arrivals %v, want none at the refusing endpoint 0", r.Client, r.Arrivals)
		}
	}
	// naive sends every third request to the refusing endpoint and fails it.
	if naive := runs[0]; naive.Failure < 16 || naive.Failure > 17 || naive.Amplification != 1 {
		t.Errorf("naive: got %d failures, amplification %v, want 16 or 17 and 1", naive.Failure, naive.Amplification)
	}
	if runs[1].Breakers == nil || runs[0].Breakers != nil {
		t.Errorf("got breaker series %v and %v, want one for bulwark only", runs[1].Breakers, runs[0].Breakers)
	}
	if !strings.Contains(progress.String(), "scenario refusing") {
		t.Errorf("got progress %q, want the scenario's header", progress.String())
	}
	if len(rep.Checks) == 0 {
		t.Error("got no checks, want bulwark's refusing targets")
	}
}

// Stopped at once, a run still returns what it measured, marked.
func TestRunInterrupted(t *testing.T) {
	scens, _ := scenario.Lookup([]string{"healthy", "refusing"})
	specs, _ := clients.Lookup([]string{"naive"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rep := scenario.Run(ctx, scenario.Options{Scenarios: scens, Clients: specs, Duration: time.Second, Rate: 50})
	if !rep.Interrupted || len(rep.Scenarios) != 0 {
		t.Errorf("got interrupted %v with %d scenarios, want interrupted before any", rep.Interrupted, len(rep.Scenarios))
	}
}
