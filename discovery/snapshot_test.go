package discovery

import (
	"math/rand/v2"
	"testing"
)

func TestModulus(t *testing.T) {
	ds := []int{1, 2, 3, 5, 7, 10, 4095, 4096, 4097, 65535, 1 << 20, 1<<31 - 1, 1 << 31, 1<<32 - 1}
	for range 100 {
		ds = append(ds, 1+rand.IntN(1<<32-1))
	}
	as := []uint32{0, 1, 2, 1<<31 - 1, 1 << 31, 1<<32 - 2, 1<<32 - 1}
	for range 1000 {
		as = append(as, rand.Uint32())
	}
	for d := 1; d <= 1000; d++ {
		ds = append(ds, d)
	}
	for _, d := range ds {
		m := newModulus(d)
		for _, a := range as {
			if got, want := m.of(a), uint64(a)%uint64(d); got != want {
				t.Fatalf("%d mod %d: got %d, want %d", a, d, got, want)
			}
		}
	}
}
