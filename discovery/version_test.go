package discovery_test

import (
	"strings"
	"testing"

	"github.com/bulwarkrpc/bulwark/discovery"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want discovery.Version
		ok   bool
	}{
		{"1.4.2", discovery.Version{1, 4, 2}, true},
		{"v1.4.2", discovery.Version{1, 4, 2}, true},
		{"V2", discovery.Version{2, 0, 0}, true},
		{"2.1", discovery.Version{2, 1, 0}, true},
		{"0.0.0", discovery.Version{}, true},
		{"2.1.0-rc.1", discovery.Version{2, 1, 0}, true},
		{"2.1.0+sha.5114f85", discovery.Version{2, 1, 0}, true},
		{"2.1.0-rc-1+build.7", discovery.Version{2, 1, 0}, true},
		{"2147483647.0.0", discovery.Version{2147483647, 0, 0}, true},
		{"", discovery.Version{}, false},
		{"v", discovery.Version{}, false},
		{"abc", discovery.Version{}, false},
		{"1.2.3.4", discovery.Version{}, false},
		{"1..2", discovery.Version{}, false},
		{"1.2.", discovery.Version{}, false},
		{"-1.2.3", discovery.Version{}, false},
		{"+1.2.3", discovery.Version{}, false},
		{"1.2.3-", discovery.Version{}, false},
		{"1.2.3-rc..1", discovery.Version{}, false},
		{"1.2.3+", discovery.Version{}, false},
		{"1.2.3-rc_1", discovery.Version{}, false},
		{"2147483648.0.0", discovery.Version{}, false},
		{"99999999999999999999", discovery.Version{}, false},
		{" 1.2.3", discovery.Version{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := discovery.ParseVersion(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("ParseVersion(%q): got %v, %v, want %v", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseVersion(%q): got %v, want an error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.in) || !strings.Contains(err.Error(), "MAJOR[.MINOR[.PATCH]]") {
				t.Fatalf("ParseVersion(%q): error %q, want it to name the input and the form", tc.in, err)
			}
		})
	}
}

func TestRequirement(t *testing.T) {
	for _, tc := range []struct {
		req     string
		version string
		want    bool
	}{
		{"2", "2.0.0", true},
		{"2", "2.9.1", true},
		{"2", "1.9.9", false},
		{"2", "3.0.0", false},
		{"v2.3", "2.3.0", true},
		{"2.3", "2.2.9", false},
		{"2.3", "2.10.0", true},
		{"0.4", "0.4.1", true},
		{"0.4", "0.3.0", false},
	} {
		t.Run(tc.req+"/"+tc.version, func(t *testing.T) {
			r, err := discovery.ParseRequirement(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			v, err := discovery.ParseVersion(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Allows(v); got != tc.want {
				t.Fatalf("%v allows %v: got %v, want %v", r, v, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "x", "2.3.1", "2.", "2-rc"} {
		if _, err := discovery.ParseRequirement(bad); err == nil || !strings.Contains(err.Error(), "MAJOR or MAJOR.MINOR") {
			t.Errorf("ParseRequirement(%q): got %v, want an error giving the form", bad, err)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "v2", "2.1.0-rc.1+b", "", "1..2", "9999999999.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := discovery.ParseVersion(s)
		if err != nil {
			return
		}
		if v.Major < 0 || v.Minor < 0 || v.Patch < 0 {
			t.Fatalf("ParseVersion(%q) = %v: negative part", s, v)
		}
		// What it prints parses back to itself.
		if w, err := discovery.ParseVersion(v.String()); err != nil || w != v {
			t.Fatalf("ParseVersion(%q) = %v, which reparses as %v, %v", s, v, w, err)
		}
	})
}
