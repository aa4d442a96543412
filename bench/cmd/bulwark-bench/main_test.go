package main

// The command's tests call run, the whole program but for os.Exit.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/bench/report"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-rate", "-1"}, "-rate is -1, want within (0, 5000]"},
		{[]string{"-rate", "1e6"}, "-rate is 1e+06"},
		{[]string{"-duration", "10ms"}, "-duration is 10ms, want within [1s, 1h0m0s]"},
		{[]string{"-deadline", "0"}, "-deadline is 0s"},
		{[]string{"-deadline", "2h"}, "-deadline is 2h0m0s"},
		{[]string{"-scenarios", "healthy,nope"}, `unknown scenario "nope" (known: healthy, refusing,`},
		{[]string{"-scenarios", ","}, "-scenarios is empty"},
		{[]string{"-clients", "curl"}, `unknown client "curl" (known: naive,`},
		{[]string{"-check", "-clients", "naive"}, "-check needs a bulwark client"},
		{[]string{"-out", ""}, "-out is empty"},
		{[]string{"-quick", "extra"}, "unexpected arguments: extra"},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-rate", "fast"}, `invalid value "fast" for flag -rate`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("got exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("got stderr %q, want it to contain %q", stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("got stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestHelpAndList(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "-quick") {
		t.Errorf("-h: got exit %d, stderr %q, want 0 and the flags", code, stderr.String())
	}
	stdout.Reset()
	if code := run(t.Context(), []string{"-list"}, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "outage") || !strings.Contains(stdout.String(), "bulwark") {
		t.Errorf("-list: got exit %d, stdout %q, want 0 and the names", code, stdout.String())
	}
}

func readReport(t *testing.T, dir string) *report.Report {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil || !bytes.Contains(html, []byte("echarts.init")) {
		t.Errorf("got report.html %d bytes, %v, want charts", len(html), err)
	}
	return r
}

// One scenario end to end, with -check: the table on stdout, the files,
// and an exit status that says whether every target was met.
func TestCheckEndToEnd(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-scenarios", "refusing", "-clients", "naive,bulwark", "-duration", "1s", "-rate", "50",
		"-check", "-progress=false", "-out", dir}, &stdout, &stderr)
	r := readReport(t, dir)
	if len(r.Scenarios) != 2 || r.Scenarios[0].Name != "healthy" || r.Scenarios[1].Name != "refusing" {
		t.Fatalf("got %d scenarios, want healthy (added by -check) and refusing", len(r.Scenarios))
	}
	want := exitOK
	if len(r.Failed()) > 0 {
		want = exitFailed
		if !strings.Contains(stderr.String(), "targets missed") || !strings.Contains(stderr.String(), "refusing/bulwark") {
			t.Errorf("got stderr %q, want the missed targets listed", stderr.String())
		}
	}
	if code != want {
		t.Errorf("got exit %d with %d failed checks, want %d", code, len(r.Failed()), want)
	}
	if len(r.Checks) == 0 {
		t.Error("got no checks")
	}
	for _, s := range []string{"healthy — every endpoint healthy", "refusing — one of three refusing", "Targets"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("got stdout %q, want %q", stdout.String(), s)
		}
	}
}

// Ctrl-C: the run stops, writes what it measured, and exits 130.
func TestInterrupt(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr bytes.Buffer
	timer := time.AfterFunc(500*time.Millisecond, cancel) // mid-run of a 20s scenario
	defer timer.Stop()
	code := run(ctx, []string{"-scenarios", "healthy", "-clients", "naive", "-rate", "50", "-progress=false", "-out", dir}, &stdout, &stderr)
	if code != exitInterrupted {
		t.Errorf("got exit %d, want %d", code, exitInterrupted)
	}
	r := readReport(t, dir)
	if !r.Interrupted || len(r.Scenarios) != 1 || len(r.Scenarios[0].Runs) != 1 {
		t.Fatalf("got interrupted %v, %d scenarios, want the interrupted healthy run", r.Interrupted, len(r.Scenarios))
	}
	if run := r.Scenarios[0].Runs[0]; run.Offered == 0 || run.Offered > 500 || !run.Interrupted {
		t.Errorf("got %d offered, interrupted %v, want some of the 1000 planned", run.Offered, run.Interrupted)
	}
	if !strings.Contains(stdout.String(), "INTERRUPTED") || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("got stdout %q, stderr %q, want the interruption said", stdout.String(), stderr.String())
	}
}
