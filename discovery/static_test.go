package discovery_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulwarkrpc/bulwark/discovery"
)

func TestNewStaticValidates(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services map[string][]discovery.Instance
		want     string // in the error
	}{
		{"empty address", map[string][]discovery.Instance{"users": {{Addr: "a:1"}, {Addr: ""}}}, `"users": discovery: invalid instance: [1] empty address`},
		{"duplicate", map[string][]discovery.Instance{"users": {{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "a:1"}}}, `[2] "a:1": duplicate address (also [0])`},
		{"negative weight", map[string][]discovery.Instance{"users": {{Addr: "a:1", Weight: -2}}}, `[0] "a:1": weight -2, want >= 0`},
		{"bad version", map[string][]discovery.Instance{"users": {{Addr: "a:1", Version: "one"}}}, `[0] "a:1": discovery: version "one"`},
		{"empty service", map[string][]discovery.Instance{"": {{Addr: "a:1"}}}, "empty service name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := discovery.NewStatic(tc.services)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewStatic: got %v, want an error containing %q", err, tc.want)
			}
			if tc.name != "empty service" && !errors.Is(err, discovery.ErrInvalidInstance) {
				t.Fatalf("NewStatic: got %v, want it to match ErrInvalidInstance", err)
			}
		})
	}
}

func TestStaticResolve(t *testing.T) {
	set := []discovery.Instance{{Addr: "a:1", Version: "1.2.0", Weight: 2}, {Addr: "b:1"}}
	st, err := discovery.NewStatic(map[string][]discovery.Instance{"users": set, "empty": nil})
	if err != nil {
		t.Fatal(err)
	}
	set[0].Addr = "changed:1" // NewStatic kept a copy
	got, err := st.Resolve(context.Background(), "users")
	if err != nil || len(got) != 2 || got[0].Addr != "a:1" || got[0].Weight != 2 || got[1].Addr != "b:1" {
		t.Fatalf("Resolve(users): got %v, %v, want a:1 (weight 2), b:1", got, err)
	}
	got[0].Addr = "changed:1" // Resolve returned a copy
	if again, _ := st.Resolve(context.Background(), "users"); again[0].Addr != "a:1" {
		t.Fatalf("Resolve(users) after the caller modified its result: got %v", again)
	}
	if got, err := st.Resolve(context.Background(), "empty"); err != nil || len(got) != 0 {
		t.Fatalf("Resolve(empty): got %v, %v, want no instance and no error", got, err)
	}
	if _, err := st.Resolve(context.Background(), "orders"); !errors.Is(err, discovery.ErrNoInstance) || !strings.Contains(err.Error(), `"orders"`) {
		t.Fatalf("Resolve(orders): got %v, want ErrNoInstance naming the service", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := st.Resolve(ctx, "users"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestStaticWatchSeesEverySet(t *testing.T) {
	st := mustStatic(t, insts("a:1"))
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan []discovery.Instance)
	done := make(chan error)
	go func() {
		done <- st.Watch(ctx, "svc", func(set []discovery.Instance) { updates <- set })
	}()
	if got := <-updates; len(got) != 1 || got[0].Addr != "a:1" {
		t.Fatalf("first update: got %v, want a:1", got)
	}
	if err := st.Set("svc", insts("a:1", "b:1")); err != nil {
		t.Fatal(err)
	}
	if got := <-updates; len(got) != 2 || got[1].Addr != "b:1" {
		t.Fatalf("update after Set: got %v, want a:1, b:1", got)
	}
	if err := st.Set("svc", insts("x:1", "x:1")); err == nil {
		t.Fatal("Set with a duplicate: got nil, want an error")
	}
	if got, _ := st.Resolve(context.Background(), "svc"); len(got) != 2 {
		t.Fatalf("Resolve after a refused Set: got %v, want the set before it", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel: got %v, want nil", err)
	}
	if err := st.Watch(context.Background(), "orders", func([]discovery.Instance) {}); !errors.Is(err, discovery.ErrNoInstance) {
		t.Fatalf("Watch(orders): got %v, want ErrNoInstance at once", err)
	}
}
