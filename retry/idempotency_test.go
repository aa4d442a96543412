package retry_test

import (
	"regexp"
	"testing"

	"github.com/bulwarkrpc/bulwark/retry"
)

func TestNewIdempotencyKey(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		k := retry.NewIdempotencyKey()
		if !uuid4.MatchString(k) {
			t.Fatalf("got %q, want a version 4 UUID", k)
		}
		if seen[k] {
			t.Fatalf("got %q twice, want unique keys", k)
		}
		seen[k] = true
	}
}
