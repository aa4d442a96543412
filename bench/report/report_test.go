package report_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/report"
)

func sample() *report.Report {
	rec := report.Millis(1234)
	return &report.Report{
		Started:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Finished: time.Date(2026, 1, 2, 3, 5, 6, 0, time.UTC),
		Machine:  report.Machine{GOOS: "linux", GOARCH: "amd64", CPUs: 2, GOMAXPROCS: 2, GoVersion: "go1.26"},
		Settings: report.Settings{Quick: true, Deadline: 2000, Bucket: 100},
		Clients: []report.Client{
			{Name: "naive", Transport: "http", Config: "plain <b>client</b>"},
			{Name: "bulwark", Transport: "http", Bulwark: true, Config: "Standard"},
		},
		Scenarios: []report.Scenario{{
			Name: "outage", Title: "total outage", Description: "Every endpoint is down.", Duration: 20000, Rate: 200,
			FaultStart: 2000, FaultEnd: 12000,
			Runs: []report.Run{
				{Client: "naive", Transport: "http", Offered: 4000, Success: 2000, Failure: 2000, SuccessPct: 50, AnsweredPct: 50,
					P50: 6.4, P99: 16.1, P999: 27.8, Amplification: 1, Never: true, Arrivals: []int64{700, 700, 600},
					Series: []report.Point{{T: 0, Offered: 20, Success: 20, P50: 10, P99: 15}, {T: 100, Offered: 20, Failure: 20, P50: 1, P99: 2}}},
				{Client: "bulwark", Transport: "http", Offered: 4000, Success: 1800, Fallback: 2200, SuccessPct: 45, AnsweredPct: 100,
					P50: 1.68, P99: 98.8, P999: 136, Amplification: 0.55, Recover: &rec, Late: 80,
					Series:   []report.Point{{T: 0, Offered: 20, Success: 20, P50: 10, P99: 15}, {T: 100, Offered: 20, Fallback: 20, P50: 0.5, P99: 1}},
					Breakers: []report.BPoint{{T: 100, Open: 0}, {T: 200, Open: 2, HalfOpen: 1}}},
				{Client: "broken", Transport: "http", Error: "building the client: no"},
			},
		}},
		Checks: []report.Check{
			{Scenario: "outage", Client: "bulwark", Target: "recovery", Want: "<= 6.00s", Got: "1.23s", Pass: true},
			{Scenario: "outage", Client: "bulwark", Target: "failures while open, p99", Want: "<= 5ms", Got: "7.00ms", Miss: "over by 2.00ms"},
		},
		Notes: []string{"no bulwark gRPC client yet"},
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"outage — total outage (200 req/s for 20s per client)",
		"client  success  answered",
		"naive   50.00%    50.00%",
		"6.40ms  16.1ms  27.8ms  1.00×    never",
		"bulwark   45.00%   100.00%  1.68ms  98.8ms   136ms  0.55×    1.23s  2.0%",
		"warning: bulwark: 2.0% of its requests started more than 10ms late",
		"  broken: error: building the client: no",
		"PASS  outage    bulwark  recovery <= 6.00s: got 1.23s",
		"FAIL  outage    bulwark  failures while open, p99 <= 5ms: got 7.00ms (over by 2.00ms)",
		"note: no bulwark gRPC client yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("got:\n%s\nwant it to contain %q", out, want)
		}
	}
	if strings.Contains(out, "warning: naive") {
		t.Error("got a warning for naive, which was on time")
	}
	if strings.Contains(out, "INTERRUPTED") {
		t.Error("got INTERRUPTED for a complete run")
	}
	r := sample()
	r.Interrupted = true
	b.Reset()
	_ = r.WriteText(&b)
	if !strings.HasPrefix(b.String(), "INTERRUPTED") {
		t.Errorf("got %q, want it to start with INTERRUPTED", b.String()[:40])
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWritersReportErrors(t *testing.T) {
	r := sample()
	for name, write := range map[string]func() error{
		"text": func() error { return r.WriteText(failingWriter{}) },
		"json": func() error { return r.WriteJSON(failingWriter{}) },
		"html": func() error { return r.WriteHTML(failingWriter{}) },
	} {
		if err := write(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: got %v, want the writer's error", name, err)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var b bytes.Buffer
	want := sample()
	if err := want.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"p99_ms": 98.8`, `"recover_ms": 1234`, `"recover_never": true`, `"amplification": 0.55`, `"half_open": 1`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("got JSON without %s", key)
		}
	}
	got, err := report.ReadJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if f := got.Failed(); len(f) != 1 || f[0].Target != "failures while open, p99" {
		t.Errorf("got failed %v, want the one missed target", f)
	}
}

func TestWriteHTML(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`<script src="` + report.EChartsURL + `"></script>`,
		`id="s0_outage_lat"`, `id="s0_outage_ok"`, `id="s0_outage_brk"`, // the three charts
		"echarts.init(document.getElementById('s0_outage_brk')",
		"p99 latency over time", "success over time", "breakers open over time",
		"plain &lt;b&gt;client&lt;/b&gt;", // configuration text escaped
		"<td>bulwark</td><td>4000</td><td>45.00%</td><td>100.00%</td>",
		"[700 700 600]",
		`class="fail">FAIL bulwark: failures while open, p99 &lt;= 5ms, got 7.00ms (over by 2.00ms)`,
		"building the client: no",
		"load ECharts from a CDN",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("got HTML without %q", want)
		}
	}
	if strings.Contains(out, "<b>client</b>") {
		t.Error("got the configuration text unescaped")
	}
	// The breaker chart holds open + half-open/2 and leaves out clients
	// without breakers.
	if !strings.Contains(out, `"name":"bulwark","type":"line"`) || !strings.Contains(out, `{"value":2.5}`) {
		t.Errorf("got breaker chart data without bulwark's 2.5 open")
	}
}

func TestWriteHTMLWithoutBreakers(t *testing.T) {
	r := sample()
	r.Scenarios[0].Runs[1].Breakers = nil
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "s0_outage_brk") {
		t.Error("got a breaker chart with no breaker data, want none")
	}
}

func TestFmtMs(t *testing.T) {
	for _, tt := range []struct {
		in   report.Millis
		want string
	}{{0.42, "0.42ms"}, {12.34, "12.3ms"}, {250.4, "250ms"}, {1250, "1.25s"}} {
		if got := report.FmtMs(tt.in); got != tt.want {
			t.Errorf("FmtMs(%v): got %q, want %q", tt.in, got, tt.want)
		}
	}
}
