package httpclient_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	"github.com/bulwarkrpc/bulwark/httpclient"
)

func ExampleWrap() {
	// A server whose first answer is a 503: the Standard client retries it.
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "hello")
	}))
	defer srv.Close()

	client, err := httpclient.Wrap(http.DefaultClient, httpclient.Standard())
	if err != nil {
		panic(err)
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close() // releases the breaker and the bulkhead
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", calls.Load(), "requests")
	// Output:
	// 200 hello after 2 requests
}

func ExampleNew_cachedFallback() {
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, `{"price": 42}`)
	}))
	defer srv.Close()

	// A client for one upstream: the Standard policies plus, for GET, the
	// last good answer when the upstream fails.
	cfg := httpclient.Standard()
	cfg.Retry.MaxAttempts = 1 // fall back at once, for the example
	cfg.Fallback = &httpclient.FallbackConfig{}
	tr, err := httpclient.New(http.DefaultTransport, cfg)
	if err != nil {
		panic(err)
	}
	defer tr.Close()
	prices := &http.Client{Transport: tr}

	for _, state := range []string{"up", "down"} {
		down.Store(state == "down")
		resp, err := prices.Get(srv.URL + "/price/7")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body) // read to the end: the answer is cached
		resp.Body.Close()
		fmt.Printf("upstream %s: %d %s fallback=%q\n", state, resp.StatusCode, body, resp.Header.Get(httpclient.FallbackHeader))
	}
	// Output:
	// upstream up: 200 {"price": 42} fallback=""
	// upstream down: 200 {"price": 42} fallback="stale"
}
