package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPartialAnswers runs the program for real — three services and the
// API over loopback HTTP — and checks the page it serves in each phase.
func TestPartialAnswers(t *testing.T) {
	var out bytes.Buffer
	answers, err := play(&out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(answers) != 4 {
		t.Fatalf("phases: got %d, want 4", len(answers))
	}
	liveOrders := []Order{{ID: 1, Cents: 1250}, {ID: 2, Cents: 399}}
	want := []struct {
		status   int
		recs     []string
		degraded []string
	}{
		{200, []string{"difference engine", "analytical engine"}, nil},
		{200, []string{"bestsellers"}, []string{"recommendations"}},           // the default replaces the missing part
		{200, []string{"bestsellers"}, []string{"orders", "recommendations"}}, // the last good orders, from the cache
		{502, nil, nil}, // no page without its user
	}
	for i, w := range want {
		a := answers[i]
		t.Run(a.Phase, func(t *testing.T) {
			if a.Status != w.status {
				t.Fatalf("status: got %d, want %d (body %s)", a.Status, w.status, a.Body)
			}
			if w.status != 200 {
				if !strings.Contains(a.Body, "users service") || strings.Contains(a.Body, "127.0.0.1") {
					t.Errorf("body: got %q, want the missing service named, no internal address", a.Body)
				}
				return
			}
			p := a.Profile
			if p.User != (User{ID: "42", Name: "Ada Lovelace"}) {
				t.Errorf("user: got %+v, want 42, Ada Lovelace", p.User)
			}
			if !slices.Equal(p.Orders, liveOrders) {
				t.Errorf("orders: got %v, want %v", p.Orders, liveOrders)
			}
			if !slices.Equal(p.Recommendations, w.recs) {
				t.Errorf("recommendations: got %v, want %v", p.Recommendations, w.recs)
			}
			if !slices.Equal(p.Degraded, w.degraded) {
				t.Errorf("degraded: got %v, want %v", p.Degraded, w.degraded)
			}
		})
	}
}
