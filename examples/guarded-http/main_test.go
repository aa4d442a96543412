package main

import (
	"bytes"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/breaker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPlay runs the program against its real loopback server and checks
// what each guard did, phase by phase.
func TestPlay(t *testing.T) {
	var out bytes.Buffer
	rep, err := play(&out, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())

	if h := rep.Healthy; h.OK != 20 {
		t.Errorf("healthy phase: %v, want 20 ok", h)
	}
	f := rep.Failing
	if f.ServerErrors < 10 || f.BreakerOpen == 0 || f.ServerErrors+f.BreakerOpen != 30 {
		t.Errorf("failing phase: %v, want >= 10 5xx (the minimum before judging) then breaker-open for the rest", f)
	}
	if r := rep.Recovered; r.OK != 20 {
		t.Errorf("recovered phase: %v, want 20 ok (half-open trials succeed, breaker closes)", r)
	}
	s := rep.Slow
	if s.BulkheadFull < 4 || s.Deadlines < 1 || s.BulkheadFull+s.Deadlines+s.BreakerOpen != 8 {
		t.Errorf("slow phase: %v, want 4 admitted that hit the attempt deadline and >= 4 refused by the bulkhead", s)
	}
	var opened, closed bool
	for _, e := range rep.Events {
		opened = opened || e.To == breaker.Open
		closed = closed || (e.From == breaker.HalfOpen && e.To == breaker.Closed)
	}
	if !opened || !closed {
		t.Errorf("breaker events %v: want it to open and later close again", rep.Events)
	}
}
