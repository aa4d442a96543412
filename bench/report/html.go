package report

import (
	"fmt"
	"html/template"
	"io"
	"regexp"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// EChartsURL is where the page loads the ECharts script from: the CDN
// go-echarts uses by default. The page needs it to draw its charts.
const EChartsURL = "https://go-echarts.github.io/go-echarts-assets/assets/echarts.min.js"

// WriteHTML writes a self-describing page: the settings, each scenario's
// table, and for each scenario three charts — latency (p99) over time,
// success over time, breaker state over time — drawn with go-echarts.
func (r *Report) WriteHTML(w io.Writer) error {
	page := htmlPage{R: r, EChartsURL: EChartsURL}
	for i, s := range r.Scenarios {
		hs := htmlScenario{S: s}
		for _, c := range r.Checks {
			if c.Scenario == s.Name {
				hs.Checks = append(hs.Checks, c)
			}
		}
		id := "s" + strconv.Itoa(i) + "_" + jsIdent(s.Name)
		for _, ch := range []*charts.Line{
			latencyChart(id+"_lat", s),
			successChart(id+"_ok", s),
			breakerChart(id+"_brk", s),
		} {
			if ch == nil {
				continue
			}
			sn := ch.RenderSnippet()
			hs.Charts = append(hs.Charts, template.HTML(sn.Element+sn.Script)) // go-echarts' own output
		}
		page.Scenarios = append(page.Scenarios, hs)
	}
	return pageTemplate.Execute(w, page)
}

type htmlPage struct {
	R          *Report
	EChartsURL string
	Scenarios  []htmlScenario
}

type htmlScenario struct {
	S      Scenario
	Checks []Check
	Charts []template.HTML
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]`)

func jsIdent(s string) string { return nonIdent.ReplaceAllString(s, "_") }

// axis returns the x axis labels, in seconds, of the longest series.
func axis(s Scenario) []string {
	var longest []Point
	for _, run := range s.Runs {
		if len(run.Series) > len(longest) {
			longest = run.Series
		}
	}
	labels := make([]string, len(longest))
	for i, p := range longest {
		labels[i] = strconv.FormatFloat(float64(p.T)/1000, 'f', 1, 64)
	}
	return labels
}

func newLine(id, title, yName string) *charts.Line {
	line := charts.NewLine()
	line.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{ChartID: id, Width: "1000px", Height: "340px"}),
		charts.WithTitleOpts(opts.Title{Title: title}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "30px"}),
		charts.WithGridOpts(opts.Grid{Top: "70px"}),
		charts.WithXAxisOpts(opts.XAxis{Name: "s"}),
		charts.WithYAxisOpts(opts.YAxis{Name: yName}),
	)
	return line
}

func latencyChart(id string, s Scenario) *charts.Line {
	line := newLine(id, "p99 latency over time (from the intended send time)", "ms")
	line.SetXAxis(axis(s))
	for _, run := range s.Runs {
		data := make([]opts.LineData, len(run.Series))
		for i, p := range run.Series {
			if p.Offered == 0 {
				data[i] = opts.LineData{Value: "-"}
				continue
			}
			data[i] = opts.LineData{Value: round(float64(p.P99))}
		}
		line.AddSeries(run.Client, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
	}
	return line
}

func successChart(id string, s Scenario) *charts.Line {
	line := newLine(id, "success over time (answered by the server; fallbacks not counted)", "%")
	line.SetXAxis(axis(s))
	for _, run := range s.Runs {
		data := make([]opts.LineData, len(run.Series))
		for i, p := range run.Series {
			if p.Offered == 0 {
				data[i] = opts.LineData{Value: "-"}
				continue
			}
			data[i] = opts.LineData{Value: round(100 * float64(p.Success) / float64(p.Offered))}
		}
		line.AddSeries(run.Client, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
	}
	return line
}

// breakerChart draws open breakers (a half-open one counts ½) per client
// with breakers; nil when none has any.
func breakerChart(id string, s Scenario) *charts.Line {
	line := newLine(id, "breakers open over time (half-open counts ½)", "breakers")
	line.SetXAxis(axis(s))
	any := false
	for _, run := range s.Runs {
		if len(run.Breakers) == 0 {
			continue
		}
		any = true
		data := make([]opts.LineData, len(run.Breakers))
		for i, b := range run.Breakers {
			data[i] = opts.LineData{Value: float64(b.Open) + float64(b.HalfOpen)/2}
		}
		line.AddSeries(run.Client, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false), Step: "end"}))
	}
	if !any {
		return nil
	}
	return line
}

func round(v float64) float64 {
	f, _ := strconv.ParseFloat(fmt.Sprintf("%.3f", v), 64)
	return f
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"ms":      FmtMs,
	"pct":     pct,
	"recover": recoverText,
	"dur":     func(m Millis) string { return fmtDur(m.Duration()) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bulwark benchmark</title>
<script src="{{.EChartsURL}}"></script>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.config { text-align: left; font-size: 0.9em; }
.pass { color: #17662b; } .fail { color: #b3261e; font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>bulwark benchmark</h1>
{{with .R}}
{{if .Interrupted}}<p class="fail">The run was interrupted: this is what was measured before it stopped.</p>{{end}}
<p>Started {{.Started.Format "2006-01-02 15:04:05 MST"}}, finished {{.Finished.Format "15:04:05"}};
{{.Machine.CPUs}} CPUs (GOMAXPROCS {{.Machine.GOMAXPROCS}}), {{.Machine.GOOS}}/{{.Machine.GOARCH}}, {{.Machine.GoVersion}}.
{{if .Settings.Quick}}Quick mode.{{end}} Each request's deadline: {{ms .Settings.Deadline}}.
{{if .Settings.Serial}}Clients ran one after another.{{else}}Clients ran at the same time, each against a fleet of its own following the same schedule.{{end}}</p>
<p class="note">Latency is measured from the time each request was meant to start (open loop, no coordinated omission).
Success counts answers from the servers; "answered" adds answers from a cache in place of a failure.
Amplification is the attempts a client put on the wire (retries included, connections refused included) ÷ the requests offered.
Late is the share of requests the generator started more than 10ms after their time: above 1 % the machine was too busy and the numbers are in doubt.
Recover is the time from the fault's end (or from its start, for a fault that lasts) to the first full second with at least 99 % successes.
The charts load ECharts from a CDN ({{$.EChartsURL}}); without network access the tables still show.</p>

<h2>Clients</h2>
<table>
<tr><th>client</th><th>transport</th><th style="text-align:left">configuration</th></tr>
{{range .Clients}}<tr><td>{{.Name}}</td><td>{{.Transport}}</td><td class="config">{{.Config}}</td></tr>
{{end}}</table>
{{end}}

{{range .Scenarios}}
<h2>{{.S.Name}}: {{.S.Title}}</h2>
<p>{{.S.Description}} {{printf "%.0f" .S.Rate}} requests per second for {{dur .S.Duration}} per client.</p>
<table>
<tr><th>client</th><th>offered</th><th>success</th><th>answered</th><th>p50</th><th>p99</th><th>p99.9</th><th>ampl.</th><th>recover</th><th>late</th><th>arrivals per endpoint</th></tr>
{{range .S.Runs}}<tr><td>{{.Client}}</td>{{if .Error}}<td colspan="10" class="fail">{{.Error}}</td>{{else}}<td>{{.Offered}}</td><td>{{pct .SuccessPct}}</td><td>{{pct .AnsweredPct}}</td>
<td>{{ms .P50}}</td><td>{{ms .P99}}</td><td>{{ms .P999}}</td><td>{{printf "%.2f" .Amplification}}×</td><td>{{recover .}}</td><td>{{printf "%.1f" .LatePct}}%</td><td>{{.Arrivals}}</td>{{end}}</tr>
{{end}}</table>
{{if .Checks}}<ul>{{range .Checks}}<li class="{{if .Pass}}pass{{else}}fail{{end}}">{{if .Pass}}PASS{{else}}FAIL{{end}} {{.Client}}: {{.Target}} {{.Want}}, got {{.Got}}{{if .Miss}} ({{.Miss}}){{end}}</li>{{end}}</ul>{{end}}
{{range .Charts}}{{.}}
{{end}}
{{end}}
{{range .R.Notes}}<p class="note">{{.}}</p>{{end}}
</body>
</html>
`))
