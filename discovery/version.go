package discovery

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is the semantic API version of an instance. The zero Version is
// 0.0.0.
type Version struct {
	Major, Minor, Patch int
}

// String returns the version as MAJOR.MINOR.PATCH.
func (v Version) String() string {
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor) + "." + strconv.Itoa(v.Patch)
}

// maxPart bounds each number of a version, so that parsing never overflows
// and a version prints the same on every platform.
const maxPart = 1<<31 - 1

// ParseVersion parses a semantic version: MAJOR.MINOR.PATCH, where MINOR and
// PATCH may be left out (they are then 0), with an optional leading "v" and
// optional pre-release ("-rc.1") and build ("+sha.5114f85") suffixes, which
// are checked and then ignored: a pre-release of 2.1.0 is as compatible as
// 2.1.0 itself, so that a canary can take traffic. The error names the
// input.
func ParseVersion(s string) (Version, error) {
	core, ok := cutSuffixes(strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V"))
	var v Version
	n := 0
	if ok {
		n, ok = parseParts(core, []*int{&v.Major, &v.Minor, &v.Patch})
	}
	if !ok || n == 0 {
		return Version{}, fmt.Errorf("discovery: version %q: want MAJOR[.MINOR[.PATCH]], a leading v and -pre-release or +build suffixes accepted", s)
	}
	return v, nil
}

// cutSuffixes returns s without its pre-release and build suffixes, and
// whether they are well formed: non-empty, dot-separated, alphanumerics and
// hyphens.
func cutSuffixes(s string) (string, bool) {
	core, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !identifiers(build) {
		return "", false
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre && !identifiers(pre) {
		return "", false
	}
	return core, true
}

func identifiers(s string) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		for _, c := range id {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
				return false
			}
		}
	}
	return true
}

// parseParts parses up to len(dst) dot-separated decimal numbers of s into
// dst, and returns how many there were.
func parseParts(s string, dst []*int) (int, bool) {
	n := 0
	for part := range strings.SplitSeq(s, ".") {
		if n == len(dst) || part == "" || len(part) > 10 {
			return n, false
		}
		x := 0
		for _, c := range part {
			if c < '0' || c > '9' {
				return n, false
			}
			x = x*10 + int(c-'0')
		}
		if x > maxPart {
			return n, false
		}
		*dst[n] = x
		n++
	}
	return n, true
}

// Requirement is the API version a client needs: an instance is compatible
// when its major version is Major and its minor version at least Minor. The
// zero Requirement asks for 0.0 or a later 0.x.
type Requirement struct {
	Major, Minor int
}

// ParseRequirement parses a requirement: MAJOR or MAJOR.MINOR, with an
// optional leading "v" ("v2", "2.3"). The error names the input.
func ParseRequirement(s string) (Requirement, error) {
	var r Requirement
	n, ok := parseParts(strings.TrimPrefix(strings.TrimPrefix(s, "v"), "V"), []*int{&r.Major, &r.Minor})
	if !ok || n == 0 {
		return Requirement{}, fmt.Errorf("discovery: version requirement %q: want MAJOR or MAJOR.MINOR, a leading v accepted", s)
	}
	return r, nil
}

// Allows reports whether an instance of version v meets r: same major
// version, and a minor version no lower.
func (r Requirement) Allows(v Version) bool {
	return v.Major == r.Major && v.Minor >= r.Minor
}

// String returns the requirement as MAJOR.MINOR.
func (r Requirement) String() string {
	return strconv.Itoa(r.Major) + "." + strconv.Itoa(r.Minor)
}
