package report

import (
	"encoding/json"
	"io"
	"time"
)

// Report is one benchmark run: every scenario, every client.
type Report struct {
	Started     time.Time  `json:"started"`
	Finished    time.Time  `json:"finished"`
	Machine     Machine    `json:"machine"`
	Settings    Settings   `json:"settings"`
	Interrupted bool       `json:"interrupted"`
	Clients     []Client   `json:"clients"`
	Scenarios   []Scenario `json:"scenarios"`
	Checks      []Check    `json:"checks"`
	Notes       []string   `json:"notes,omitempty"`
}

// Machine is where the run happened.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
}

// Settings are the options the run was made with.
type Settings struct {
	Quick    bool    `json:"quick"`
	Rate     float64 `json:"rate_override,omitempty"`
	Deadline Millis  `json:"deadline_ms"`
	Serial   bool    `json:"serial"`
	Bucket   Millis  `json:"bucket_ms"`
}

// Client describes one client of the run.
type Client struct {
	Name      string `json:"name"`
	Transport string `json:"transport"`
	Bulwark   bool   `json:"bulwark"`
	Config    string `json:"config"`
}

// Scenario is one scenario and the run of every client through it.
type Scenario struct {
	Name        string  `json:"name"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Duration    Millis  `json:"duration_ms"`
	Rate        float64 `json:"rate"`
	// FaultStart and FaultEnd bound the fault, from the start; FaultEnd
	// is zero for a fault that lasts to the end.
	FaultStart Millis `json:"fault_start_ms"`
	FaultEnd   Millis `json:"fault_end_ms"`
	Runs       []Run  `json:"runs"`
}

// Run is one client through one scenario.
type Run struct {
	Client    string `json:"client"`
	Transport string `json:"transport"`
	Offered   int    `json:"offered"`
	Success   int    `json:"success"`
	Fallback  int    `json:"fallback"`
	Failure   int    `json:"failure"`
	// SuccessPct is Success ÷ Offered, in percent; AnsweredPct counts
	// Fallbacks too.
	SuccessPct  float64 `json:"success_pct"`
	AnsweredPct float64 `json:"answered_pct"`
	// Latency of every request, from its intended start.
	P50  Millis `json:"p50_ms"`
	P99  Millis `json:"p99_ms"`
	P999 Millis `json:"p999_ms"`
	// SuccessP99 is the p99 of the Successes only; FailureP99 of the rest.
	SuccessP99 Millis `json:"success_p99_ms"`
	FailureP99 Millis `json:"failure_p99_ms"`
	// Attempts counts the attempts the client put on the wire, retries
	// included; Amplification is Attempts ÷ Offered.
	Attempts      int64   `json:"attempts"`
	Amplification float64 `json:"amplification"`
	// Arrivals counts, per endpoint, the requests that reached it.
	Arrivals []int64 `json:"arrivals"`
	// Recover is the time from the scenario's reference point (the
	// fault's end, or its start for a fault that lasts) to the first full
	// second with >= 99 % successes; nil when not measured, and Never
	// when that second never came.
	Recover *Millis `json:"recover_ms,omitempty"`
	Never   bool    `json:"recover_never,omitempty"`
	// Workers is the peak number of requests in flight; Late the requests
	// the generator started more than 10ms late.
	Workers     int      `json:"workers"`
	Late        int      `json:"late"`
	Interrupted bool     `json:"interrupted,omitempty"`
	Series      []Point  `json:"series"`
	Breakers    []BPoint `json:"breakers,omitempty"`
	Extra       []Metric `json:"extra,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// MaxLatePct is the share of requests, in percent, that may start late
// before a run's numbers are in doubt: beyond it the load generator, and
// so the machine, was too busy to keep the schedule.
const MaxLatePct = 1.0

// LatePct returns the share of the requests offered that started late, in
// percent.
func (r Run) LatePct() float64 {
	if r.Offered == 0 {
		return 0
	}
	return 100 * float64(r.Late) / float64(r.Offered)
}

// Metric is a named measurement a scenario adds to a run.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Point is one slice of time of a run.
type Point struct {
	T        Millis `json:"t_ms"`
	Offered  int    `json:"offered"`
	Success  int    `json:"success"`
	Fallback int    `json:"fallback"`
	Failure  int    `json:"failure"`
	P50      Millis `json:"p50_ms"`
	P99      Millis `json:"p99_ms"`
	Attempts int64  `json:"attempts"`
}

// BPoint is the state of a client's breakers at one time.
type BPoint struct {
	T        Millis `json:"t_ms"`
	Open     int    `json:"open"`
	HalfOpen int    `json:"half_open"`
}

// Check is one target checked against one run.
type Check struct {
	Scenario string `json:"scenario"`
	Client   string `json:"client"`
	Target   string `json:"target"`
	Want     string `json:"want"`
	Got      string `json:"got"`
	Pass     bool   `json:"pass"`
	// Miss says by how much a failed target was missed.
	Miss string `json:"miss,omitempty"`
}

// Millis is a duration written as milliseconds.
type Millis float64

// Ms converts d.
func Ms(d time.Duration) Millis { return Millis(float64(d) / float64(time.Millisecond)) }

// Duration converts back.
func (m Millis) Duration() time.Duration {
	return time.Duration(float64(m) * float64(time.Millisecond))
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a Report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Failed returns the checks that did not pass.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}
