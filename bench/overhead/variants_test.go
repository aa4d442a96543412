package overhead_test

import "testing"

// Every variant the benchmarks compare makes a good call: a benchmark that
// measured failures would compare nothing.
func TestVariantsSucceed(t *testing.T) {
	for name, vs := range map[string][]variant{
		"http": httpVariants(t, okServer(t)),
		"grpc": grpcVariants(t),
	} {
		for _, v := range vs {
			for range 3 {
				if err := v.do(t.Context()); err != nil {
					t.Errorf("%s/%s: got %v, want nil", name, v.name, err)
				}
			}
		}
	}
}
