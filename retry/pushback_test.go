package retry_test

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/retry"
)

var now = time.Date(2026, time.March, 4, 12, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{"120", 120 * time.Second, true},
		{" 7\t", 7 * time.Second, true},
		{"007", 7 * time.Second, true},
		{"Wed, 04 Mar 2026 12:00:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Wednesday, 04-Mar-26 12:01:00 GMT", time.Minute, true},  // RFC 850
		{"Wed Mar  4 12:00:05 2026", 5 * time.Second, true},       // asctime
		{"Wed Mar 14 12:00:00 2026", 10 * 24 * time.Hour, true},   // asctime, two-digit day
		{"Wed, 04 Mar 2026 11:00:00 GMT", 0, true},                // past
		{"Thu, 01 Jan 1970 00:00:00 GMT", 0, true},                // long past
		{"99999999999999999999999", math.MaxInt64, true},          // saturates; the caller caps it
		{strconv.FormatInt(math.MaxInt64/int64(time.Second), 10), 9223372036 * time.Second, true},
		{"", 0, false},
		{"   ", 0, false},
		{"-1", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"5 s", 0, false},
		{"soon", 0, false},
		{"Wed, 04 Mar 2026 12:00:30 PST", 0, false}, // HTTP-dates are in GMT
		{"Wed, 04 Mar 2026 12:00:30", 0, false},
		{"2026-03-04T12:00:30Z", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, ok := retry.ParseRetryAfter(tt.value, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q): got %v, %v, want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParsePushback(t *testing.T) {
	tests := []struct {
		value  string
		want   time.Duration // -1 for any negative duration
		wantOK bool
	}{
		{"0", 0, true},
		{"250", 250 * time.Millisecond, true},
		{" 1000 ", time.Second, true},
		{"99999999999999999999999", math.MaxInt64, true},
		{"-1", -1, true}, // the server says: do not retry
		{"-250", -1, true},
		{"1.5", -1, true},
		{"abc", -1, true},
		{"+5", -1, true},
		{"", 0, false},
		{" \t", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, ok := retry.ParsePushback(tt.value)
			if tt.want < 0 && got < 0 {
				got = -1
			}
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParsePushback(%q): got %v, %v, want %v, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "1.5", "", "Wed, 04 Mar 2026 12:00:30 GMT",
		"Wednesday, 04-Mar-26 12:01:00 GMT", "Wed Mar  4 12:00:05 2026", "99999999999999999999"} {
		f.Add(s, uint32(30))
	}
	f.Fuzz(func(t *testing.T, value string, secs uint32) {
		d, ok := retry.ParseRetryAfter(value, now)
		if d < 0 {
			t.Fatalf("ParseRetryAfter(%q): got %v, want >= 0", value, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q): got %v, false, want 0 with false", value, d)
		}
		// Round trips: both forms of the same wait, whole seconds.
		want := time.Duration(secs) * time.Second
		if got, ok := retry.ParseRetryAfter(strconv.FormatUint(uint64(secs), 10), now); got != want || !ok {
			t.Fatalf("delta-seconds %d: got %v, %v, want %v, true", secs, got, ok, want)
		}
		date := now.Add(want).Format("Mon, 02 Jan 2006 15:04:05 GMT")
		if got, ok := retry.ParseRetryAfter(date, now); got != want || !ok {
			t.Fatalf("HTTP-date %q: got %v, %v, want %v, true", date, got, ok, want)
		}
	})
}

func FuzzParsePushback(f *testing.F) {
	for _, s := range []string{"0", "250", "-1", "1.5", "", "abc", "99999999999999999999"} {
		f.Add(s, uint32(250))
	}
	f.Fuzz(func(t *testing.T, value string, ms uint32) {
		d, ok := retry.ParsePushback(value)
		if !ok && d != 0 {
			t.Fatalf("ParsePushback(%q): got %v, false, want 0 with false", value, d)
		}
		want := time.Duration(ms) * time.Millisecond
		if got, ok := retry.ParsePushback(strconv.FormatUint(uint64(ms), 10)); got != want || !ok {
			t.Fatalf("%d: got %v, %v, want %v, true", ms, got, ok, want)
		}
		if got, ok := retry.ParsePushback("-" + strconv.FormatUint(uint64(ms)+1, 10)); got >= 0 || !ok {
			t.Fatalf("-%d: got %v, %v, want a negative duration, true", ms+1, got, ok)
		}
	})
}
