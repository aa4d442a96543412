// Package report holds what a benchmark run measured and writes it three
// ways: a text table for the terminal, JSON for machines, and an HTML page
// with charts (go-echarts) of latency, success and breaker state over
// time.
package report
