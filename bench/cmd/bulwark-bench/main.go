// Command bulwark-bench runs bulwark's benchmark: every client — bulwark's
// and its peers' — through every scenario of faults, side by side, on
// loopback. It prints a table, writes JSON and an HTML report with charts,
// and with -check fails when bulwark misses one of its targets.
//
//	go run ./bench/cmd/bulwark-bench -quick          # every scenario, under 2 minutes
//	go run ./bench/cmd/bulwark-bench -quick -check   # what CI runs
//	go run ./bench/cmd/bulwark-bench -scenarios outage,refusing -clients naive,bulwark
//
// Exit status: 0 when the run completed (and, with -check, every target
// was met); 1 when a target was missed or a run failed; 2 for bad flags;
// 130 when interrupted (what was measured is still written).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bulwarkrpc/bulwark/bench/clients"
	"github.com/bulwarkrpc/bulwark/bench/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// config is what the flags say.
type config struct {
	quick, check, serial, progress, list bool
	scenarios                            []scenario.Scenario
	clients                              []clients.Spec
	rate                                 float64
	duration, deadline                   time.Duration
	out                                  string
}

// Limits of the flags.
const (
	maxRate     = 5000
	minDuration = time.Second
	maxDuration = time.Hour
	minDeadline = 10 * time.Millisecond
	maxDeadline = time.Minute
)

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bulwark-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	var scen, cli string
	fs.BoolVar(&c.quick, "quick", false, "short runs: every scenario and client in under 2 minutes")
	fs.BoolVar(&c.check, "check", false, "exit 1 when a bulwark client misses a target (adds the healthy scenario, the baseline)")
	fs.StringVar(&scen, "scenarios", "all", "comma-separated scenarios to run: all, or some of "+strings.Join(scenario.Names(), ","))
	fs.StringVar(&cli, "clients", "all", "comma-separated clients to run: all, or some of "+strings.Join(clients.Names(), ","))
	fs.Float64Var(&c.rate, "rate", 0, fmt.Sprintf("requests per second per client, in (0, %d]; 0 keeps each scenario's (overload's is tied to the fleet's capacity)", maxRate))
	fs.DurationVar(&c.duration, "duration", 0, fmt.Sprintf("length of every scenario, in [%v, %v]; 0 keeps each scenario's", minDuration, maxDuration))
	fs.DurationVar(&c.deadline, "deadline", scenario.DefaultDeadline, fmt.Sprintf("each request's deadline from its intended start, in [%v, %v]", minDeadline, maxDeadline))
	fs.BoolVar(&c.serial, "serial", false, "run the clients of a scenario one after another rather than at the same time")
	fs.BoolVar(&c.progress, "progress", true, "print progress to stderr")
	fs.StringVar(&c.out, "out", filepath.Join(os.TempDir(), "bulwark-bench"), "directory for results.json and report.html")
	fs.BoolVar(&c.list, "list", false, "list the scenarios and clients, and exit")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case c.rate < 0 || c.rate > maxRate || c.rate != c.rate:
		return nil, fmt.Errorf("-rate is %v, want within (0, %d], or 0 for each scenario's", c.rate, maxRate)
	case c.duration != 0 && (c.duration < minDuration || c.duration > maxDuration):
		return nil, fmt.Errorf("-duration is %v, want within [%v, %v], or 0 for each scenario's", c.duration, minDuration, maxDuration)
	case c.deadline < minDeadline || c.deadline > maxDeadline:
		return nil, fmt.Errorf("-deadline is %v, want within [%v, %v]", c.deadline, minDeadline, maxDeadline)
	case c.out == "":
		return nil, errors.New("-out is empty, want a directory")
	}
	names, err := list(scen, scenario.Names(), "-scenarios")
	if err != nil {
		return nil, err
	}
	if c.check && !slices.Contains(names, "healthy") {
		names = append(names, "healthy") // the baseline of the relative targets
	}
	if c.scenarios, err = scenario.Lookup(names); err != nil {
		return nil, fmt.Errorf("-scenarios: %w", err)
	}
	cnames, err := list(cli, clients.Names(), "-clients")
	if err != nil {
		return nil, err
	}
	if c.clients, err = clients.Lookup(cnames); err != nil {
		return nil, fmt.Errorf("-clients: %w", err)
	}
	if c.check && !slices.ContainsFunc(c.clients, func(s clients.Spec) bool { return s.Bulwark }) {
		return nil, errors.New("-check needs a bulwark client in -clients: the targets are bulwark's")
	}
	return c, nil
}

// list splits a comma-separated flag value; "all" means every name.
func list(v string, all []string, flagName string) ([]string, error) {
	if strings.TrimSpace(v) == "all" {
		return all, nil
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty, want all or a comma-separated list", flagName)
	}
	return out, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "bulwark-bench:", err)
		fmt.Fprintln(stderr, "Run with -h for the flags.")
		return exitUsage
	}
	if c.list {
		printList(stdout)
		return exitOK
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "bulwark-bench:", err)
		return exitFailed
	}
	o := scenario.Options{
		Scenarios: c.scenarios, Clients: c.clients,
		Quick: c.quick, Rate: c.rate, Duration: c.duration, Deadline: c.deadline, Serial: c.serial,
	}
	if c.progress {
		o.Progress = stderr
	}
	rep := scenario.Run(ctx, o)
	rep.Notes = append(rep.Notes, notes(c)...)

	status := exitOK
	if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintln(stderr, "bulwark-bench: writing the table:", err)
		status = exitFailed
	}
	jsonPath, htmlPath := filepath.Join(c.out, "results.json"), filepath.Join(c.out, "report.html")
	for _, w := range []struct {
		path  string
		write func(io.Writer) error
	}{{jsonPath, rep.WriteJSON}, {htmlPath, rep.WriteHTML}} {
		if err := writeFile(w.path, w.write); err != nil {
			fmt.Fprintln(stderr, "bulwark-bench:", err)
			status = exitFailed
		}
	}
	fmt.Fprintf(stderr, "wrote %s and %s\n", jsonPath, htmlPath)

	for _, s := range rep.Scenarios {
		for _, r := range s.Runs {
			if r.Error != "" {
				fmt.Fprintf(stderr, "bulwark-bench: %s/%s failed: %s\n", s.Name, r.Client, r.Error)
				status = exitFailed
			}
		}
	}
	if c.check {
		if failed := rep.Failed(); len(failed) > 0 {
			fmt.Fprintf(stderr, "bulwark-bench: -check: %d of %d targets missed:\n", len(failed), len(rep.Checks))
			for _, f := range failed {
				fmt.Fprintf(stderr, "  %s/%s: %s %s, got %s (%s)\n", f.Scenario, f.Client, f.Target, f.Want, f.Got, f.Miss)
			}
			status = exitFailed
		} else {
			fmt.Fprintf(stderr, "bulwark-bench: -check: all %d targets met\n", len(rep.Checks))
		}
	}
	if rep.Interrupted {
		fmt.Fprintln(stderr, "bulwark-bench: interrupted; the results above and in the files are what was measured until then")
		return exitInterrupted
	}
	return status
}

// notes says what the run could not include.
func notes(c *config) []string {
	var out []string
	if !slices.ContainsFunc(c.clients, func(s clients.Spec) bool { return s.Bulwark && s.Transport == clients.GRPC }) &&
		!slices.ContainsFunc(clients.Specs(), func(s clients.Spec) bool { return s.Bulwark && s.Transport == clients.GRPC }) {
		out = append(out, "no bulwark gRPC client yet: the gRPC scenarios run grpc-go alone")
	}
	return out
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func printList(w io.Writer) {
	fmt.Fprintln(w, "scenarios:")
	for _, s := range scenario.All() {
		fmt.Fprintf(w, "  %-10s %s\n", s.Name, s.Title)
	}
	fmt.Fprintln(w, "clients:")
	for _, s := range clients.Specs() {
		fmt.Fprintf(w, "  %-14s %s\n", s.Name, s.Transport)
	}
}
