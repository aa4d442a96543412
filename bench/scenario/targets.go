package scenario

import (
	"fmt"

	"github.com/bulwarkrpc/bulwark/bench/clients"
	"github.com/bulwarkrpc/bulwark/bench/report"
)

// Check checks every run of a bulwark client against the targets of its
// scenario. Targets relative to the healthy scenario need that client's
// healthy run; without one they are left out and a note says so.
func Check(rep *report.Report, specs []clients.Spec) (checks []report.Check, notes []string) {
	isBulwark := map[string]bool{}
	for _, s := range specs {
		isBulwark[s.Name] = s.Bulwark
	}
	healthy := map[string]*report.Run{}
	for i := range rep.Scenarios {
		if rep.Scenarios[i].Name == "healthy" {
			for j := range rep.Scenarios[i].Runs {
				if run := &rep.Scenarios[i].Runs[j]; run.Error == "" {
					healthy[run.Client] = run
				}
			}
		}
	}
	missing := map[string]bool{}
	for _, s := range rep.Scenarios {
		for i := range s.Runs {
			run := &s.Runs[i]
			if !isBulwark[run.Client] {
				continue
			}
			if run.Interrupted {
				notes = append(notes, fmt.Sprintf("%s/%s was interrupted: its targets were not checked", s.Name, run.Client))
				continue
			}
			c := checker{scenario: s.Name, run: run, healthy: healthy[run.Client]}
			if run.Error != "" {
				c.fail("runs", "without error", run.Error)
				checks = append(checks, c.out...)
				continue
			}
			if late := run.LatePct(); late > report.MaxLatePct { // listed only when missed
				c.add("load on time", fmt.Sprintf("<= %g%% of requests started late", report.MaxLatePct), fmt.Sprintf("%.1f%%", late), false,
					"the machine was too busy to keep the schedule: this run's numbers are in doubt")
			}
			c.targets(s)
			if c.needsHealthy && c.healthy == nil {
				missing[run.Client] = true
			}
			checks = append(checks, c.out...)
		}
	}
	for name := range missing {
		notes = append(notes, fmt.Sprintf("%s: targets relative to the healthy scenario were not checked: its healthy run is missing", name))
	}
	return checks, notes
}

type checker struct {
	scenario     string
	run          *report.Run
	healthy      *report.Run
	needsHealthy bool
	out          []report.Check
}

func (c *checker) add(target, want, got string, pass bool, miss string) {
	ch := report.Check{Scenario: c.scenario, Client: c.run.Client, Target: target, Want: want, Got: got, Pass: pass}
	if !pass {
		ch.Miss = miss
	}
	c.out = append(c.out, ch)
}

func (c *checker) fail(target, want, got string) { c.add(target, want, got, false, "") }

// successAtLeast: the share of successes (fallbacks not counted).
func (c *checker) successAtLeast(pct float64) {
	got := c.run.SuccessPct
	c.add("success", fmt.Sprintf(">= %g%%", pct), fmt.Sprintf("%.3f%%", got), got >= pct,
		fmt.Sprintf("short by %.3f points: %d failed of %d", pct-got, c.run.Offered-c.run.Success, c.run.Offered))
}

// msAtMost: a latency against a limit in milliseconds.
func (c *checker) msAtMost(target string, got, limit report.Millis, limitText string) {
	c.add(target, fmt.Sprintf("<= %s", limitText), report.FmtMs(got), got <= limit,
		fmt.Sprintf("over by %s, %.2f× the limit", report.FmtMs(got-limit), float64(got)/float64(limit)))
}

// relative: a latency against a multiple of the same client's healthy p99.
func (c *checker) relative(target string, got report.Millis, factor float64) {
	c.needsHealthy = true
	if c.healthy == nil {
		return
	}
	limit := report.Millis(float64(c.healthy.P99) * factor)
	c.msAtMost(target, got, limit, fmt.Sprintf("%g× healthy p99 (%s)", factor, report.FmtMs(limit)))
}

func (c *checker) ratioAtMost(target string, got, limit float64) {
	c.add(target, fmt.Sprintf("<= %.2f×", limit), fmt.Sprintf("%.3f×", got), got <= limit,
		fmt.Sprintf("over by %.3f", got-limit))
}

// targets applies the targets of scenario s (the list).
func (c *checker) targets(s report.Scenario) {
	run := c.run
	switch s.Name {
	case "refusing":
		c.successAtLeast(99.99)
		c.relative("p99", run.P99, 1.5)
	case "slow":
		c.relative("p99", run.P99, 2)
	case "errors50":
		c.successAtLeast(99.9)
		c.ratioAtMost("amplification", run.Amplification, 1.2)
	case "outage":
		first, ok := extra(run, MetricFirstOpen)
		if !ok {
			c.fail("breaker", "opens during the outage", "never opened")
		} else {
			c.add("breaker", "opens during the outage", fmt.Sprintf("open %s after the outage began", report.FmtMs(report.Millis(first)-s.FaultStart)), true, "")
		}
		if v, ok := extra(run, MetricFailFastP99); ok {
			c.msAtMost("failures while open, p99", report.Millis(v), 5, "5ms")
		}
		if v, ok := extra(run, MetricAmplification); ok {
			c.ratioAtMost("amplification while open", v, 1.1)
		}
		if v, ok := extra(run, MetricAnsweredOpen); ok && run.Transport == string(clients.HTTP) {
			c.add("cached GETs served while open", ">= 99% answered", fmt.Sprintf("%.2f%%", v), v >= 99,
				fmt.Sprintf("short by %.2f points", 99-v))
		}
		limit := report.Ms(BreakerOpen) + 1000
		switch {
		case run.Never:
			c.fail("recovery", fmt.Sprintf("<= %s after the outage", report.FmtMs(limit)), "never")
		case run.Recover != nil:
			c.msAtMost("recovery", *run.Recover, limit, report.FmtMs(limit)+" after the outage (open period + 1s)")
		}
	case "overload":
		if run.Success > 0 {
			c.relative("admitted p99", run.SuccessP99, 2)
		} else { // the empty histogram's p99 reads 0ms, which would pass
			c.add("admitted p99", "<= 2× healthy p99", "none admitted", false,
				"every request was refused or failed: there is no admitted latency to compare")
		}
		if run.Failure+run.Fallback > 0 {
			c.relative("rejections p99", run.FailureP99, 1)
		}
	case "fanout":
		c.add("partial answers", "100%", fmt.Sprintf("%.3f%%", run.SuccessPct), run.SuccessPct >= 100,
			fmt.Sprintf("%d of %d without the answers of every service up", run.Offered-run.Success, run.Offered))
		limit := report.Ms(FanOutDeadline) * 1.05
		c.msAtMost("p99.9", run.P999, limit, report.FmtMs(report.Ms(FanOutDeadline))+" deadline + 5%")
	}
}
