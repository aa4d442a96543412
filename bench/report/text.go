package report

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteText writes the summary table of every scenario, then the checks.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	if r.Interrupted {
		fmt.Fprintln(ew, "INTERRUPTED: what follows is what was measured before the run was stopped.")
		fmt.Fprintln(ew)
	}
	for _, s := range r.Scenarios {
		fmt.Fprintf(ew, "%s — %s (%.0f req/s for %s per client)\n", s.Name, s.Title, s.Rate, fmtDur(s.Duration.Duration()))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "client\tsuccess\tanswered\tp50\tp99\tp99.9\tampl\trecover\tlate\t")
		var failed []Run
		for _, run := range s.Runs {
			if run.Error != "" {
				failed = append(failed, run)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f×\t%s\t%.1f%%\t\n",
				run.Client, pct(run.SuccessPct), pct(run.AnsweredPct),
				FmtMs(run.P50), FmtMs(run.P99), FmtMs(run.P999),
				run.Amplification, recoverText(run), run.LatePct())
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, run := range failed {
			fmt.Fprintf(ew, "  %s: error: %s\n", run.Client, run.Error)
		}
		for _, run := range s.Runs {
			if run.Error == "" && run.LatePct() > MaxLatePct {
				fmt.Fprintf(ew, "  warning: %s: %.1f%% of its requests started more than 10ms late: the machine was busy, and its numbers measure the machine as much as the client\n", run.Client, run.LatePct())
			}
		}
		fmt.Fprintln(ew)
	}
	if len(r.Checks) > 0 {
		fmt.Fprintln(ew, "Targets (bulwark's clients must meet them):")
		for _, c := range r.Checks {
			verdict := "PASS"
			if !c.Pass {
				verdict = "FAIL"
			}
			fmt.Fprintf(ew, "  %s  %-9s %-8s %s %s: got %s", verdict, c.Scenario, c.Client, c.Target, c.Want, c.Got)
			if c.Miss != "" {
				fmt.Fprintf(ew, " (%s)", c.Miss)
			}
			fmt.Fprintln(ew)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(ew, "note:", n)
	}
	return ew.err
}

func recoverText(run Run) string {
	switch {
	case run.Never:
		return "never"
	case run.Recover == nil:
		return "–"
	}
	return FmtMs(*run.Recover)
}

func pct(p float64) string {
	if p >= 99.995 && p < 100 {
		return fmt.Sprintf("%.3f%%", p)
	}
	return fmt.Sprintf("%.2f%%", p)
}

// FmtMs formats a duration in milliseconds for people: "0.42ms",
// "12.3ms", "250ms", "1.25s".
func FmtMs(m Millis) string {
	switch v := float64(m); {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}

func fmtDur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
