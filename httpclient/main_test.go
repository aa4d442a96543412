package httpclient_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulwarkrpc/bulwark/httpclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a loopback HTTP server that counts the connections it accepts
// and the requests it serves.
type server struct {
	*httptest.Server
	conns    atomic.Int32
	requests atomic.Int32
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// client returns an http.Client over the server's own transport, wrapped
// with cfg; its idle connections are closed at the end of the test.
func (s *server) client(t testing.TB, cfg httpclient.Config) (*http.Client, *httpclient.Transport) {
	t.Helper()
	base := s.Client()
	tr, err := httpclient.New(base.Transport, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = tr.Close()
	})
	return &http.Client{Transport: tr}, tr
}

// get sends a GET and returns the status and body, closing the body.
func get(t testing.TB, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// trackedBody is a request body that records whether it was closed.
type trackedBody struct {
	io.Reader
	mu     sync.Mutex
	closed int
}

func newTrackedBody(s string) *trackedBody { return &trackedBody{Reader: strings.NewReader(s)} }

func (b *trackedBody) Close() error {
	b.mu.Lock()
	b.closed++
	b.mu.Unlock()
	return nil
}

func (b *trackedBody) closes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}
