package discovery_test

import (
	"errors"
	"testing"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/discovery"
)

func TestValidate(t *testing.T) {
	if err := discovery.Validate(nil); err != nil {
		t.Fatalf("Validate(nil): got %v, want nil", err)
	}
	good := []discovery.Instance{{Addr: "a:1", Version: "v1.2.3", Weight: 3}, {Addr: "b:1"}}
	if err := discovery.Validate(good); err != nil {
		t.Fatalf("Validate(%v): got %v, want nil", good, err)
	}
	bad := []discovery.Instance{{Addr: "a:1"}, {Addr: "a:1"}}
	if err := discovery.Validate(bad); !errors.Is(err, discovery.ErrInvalidInstance) {
		t.Fatalf("Validate(%v): got %v, want ErrInvalidInstance", bad, err)
	}
}

func TestNoInstanceError(t *testing.T) {
	for _, tc := range []struct {
		err  discovery.NoInstanceError
		want string
	}{
		{discovery.NoInstanceError{Service: "users"}, `discovery: no instance of "users" (none known)`},
		{discovery.NoInstanceError{Service: "users", Known: 3, Incompatible: 2, Invalid: 1}, `discovery: no instance of "users" (3 known: 2 incompatible, 1 invalid)`},
		{discovery.NoInstanceError{Service: "users", Known: 2, Ejected: 2}, `discovery: no instance of "users" (2 known: 2 ejected)`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error: got %q, want %q", got, tc.want)
		}
		for _, target := range []error{discovery.ErrNoInstance, bulwark.ErrNoEndpoint, bulwark.ErrRejected} {
			if !errors.Is(&tc.err, target) {
				t.Errorf("errors.Is(%v, %v): got false, want true", &tc.err, target)
			}
		}
	}
}
