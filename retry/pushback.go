package retry

import (
	"math"
	"strings"
	"time"
)

// The HTTP-date forms of RFC 9110, section 5.6.7: IMF-fixdate, which
// senders must use, then the obsolete RFC 850 and asctime forms, which
// recipients must accept. They are the layouts net/http's ParseTime tries.
const (
	imfFixdate = "Mon, 02 Jan 2006 15:04:05 GMT"
	rfc850     = "Monday, 02-Jan-06 15:04:05 GMT"
	asctime    = "Mon Jan _2 15:04:05 2006"
)

// maxSeconds is the largest delta-seconds a time.Duration holds.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// ParseRetryAfter parses the value of an HTTP Retry-After header (RFC 9110,
// section 10.2.3) received at now: delta-seconds ("120") or an HTTP-date
// ("Wed, 21 Oct 2015 07:28:00 GMT", or the obsolete RFC 850 and asctime
// forms). It returns the wait the server asked for and true; a date already
// past gives 0 and true. A delta too large for a time.Duration saturates to
// the largest one: callers cap every wait (Config.MaxPushback) rather than
// trust it. Anything else (empty, negative, fractional, signed, a date with
// another zone than GMT) gives 0 and false. Surrounding spaces and tabs are
// ignored.
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.Trim(value, " \t")
	if d, ok := parseDigits(value); ok {
		if d > maxSeconds {
			return math.MaxInt64, true
		}
		return time.Duration(d) * time.Second, true
	}
	for _, layout := range [...]string{imfFixdate, rfc850, asctime} {
		if t, err := time.Parse(layout, value); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// ParsePushback parses the value of gRPC's grpc-retry-pushback-ms trailer
// (gRFC A6). A non-negative integer is the wait the server asks for, in
// milliseconds, and ParsePushback returns it and true; a value too large for
// a time.Duration saturates to the largest one (callers cap it). Any other
// non-empty value (negative, fractional, not a number) means, by the
// specification, that the server asks the client not to retry: ParsePushback
// returns a negative duration and true, which a bulwark.Result carries as its
// Pushback. An empty value (surrounding spaces and tabs are ignored) is no
// pushback at all: 0 and false.
func ParsePushback(value string) (time.Duration, bool) {
	value = strings.Trim(value, " \t")
	if value == "" {
		return 0, false
	}
	ms, ok := parseDigits(value)
	if !ok {
		return -1, true
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// parseDigits parses a non-empty run of ASCII digits, saturating at
// math.MaxInt64; anything else, signs included, is not a number.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt64-9)/10 {
			n = math.MaxInt64 // keep scanning: a later non-digit still makes s garbage
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
