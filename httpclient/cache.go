package httpclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwarkrpc/bulwark/fallback"
)

// FallbackHeader marks a response served from the cache in place of a
// failure: its value is "stale". The Age header tells how old it is.
const FallbackHeader = "Bulwark-Fallback"

// stored is a cached response.
type stored struct {
	status int
	proto  string
	major  int
	minor  int
	header http.Header
	body   []byte
	size   int
}

// responseCache keeps the last good response to each GET, to answer in
// place of a failure.
type responseCache struct {
	c       *fallback.Cache[*stored]
	key     func(*http.Request) string
	maxBody int64
}

func newResponseCache(cfg FallbackConfig, mp metric.MeterProvider) (*responseCache, error) {
	rc := &responseCache{key: cfg.Key, maxBody: cfg.MaxBodyBytes}
	if rc.maxBody == 0 {
		rc.maxBody = defaultMaxBodyBytes
	}
	cc := fallback.CacheConfig[*stored]{
		MaxStale:      cfg.MaxStale,
		MaxEntries:    cfg.MaxEntries,
		MaxBytes:      cfg.MaxBytes,
		Size:          func(s *stored) int { return s.size },
		Name:          "httpclient",
		MeterProvider: mp,
	}
	if cc.MaxStale == 0 {
		cc.MaxStale = defaultMaxStale
	}
	if cc.MaxEntries == 0 {
		cc.MaxEntries = defaultMaxEntries
	}
	if cc.MaxBytes == 0 {
		cc.MaxBytes = defaultMaxBytes
	}
	c, err := fallback.NewCache(cc)
	if err != nil {
		return nil, fmt.Errorf("httpclient: Config.Fallback: %w", err)
	}
	rc.c = c
	return rc, nil
}

// keyOf returns the cache key of req, or "" when req must not be cached.
func (rc *responseCache) keyOf(req *http.Request) string {
	if req.Method != http.MethodGet && req.Method != "" {
		return ""
	}
	if rc.key != nil {
		return rc.key(req)
	}
	if req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "" {
		return "" // an answer that may belong to one user is never shared
	}
	return req.URL.String()
}

// capture starts recording the body of a good response to req, or returns
// nil when it is not to be cached.
func (rc *responseCache) capture(req *http.Request, resp *http.Response) *capture {
	key := rc.keyOf(req)
	if key == "" || resp.ContentLength > rc.maxBody {
		return nil
	}
	return &capture{rc: rc, key: key, resp: resp}
}

// capture accumulates a response body as the caller reads it; at EOF the
// response is stored, unless it grew beyond the limit.
type capture struct {
	rc   *responseCache
	key  string
	resp *http.Response
	buf  bytes.Buffer
	over bool
}

func (c *capture) write(p []byte) {
	if c.over {
		return
	}
	if int64(c.buf.Len()+len(p)) > c.rc.maxBody {
		c.over = true
		c.buf = bytes.Buffer{}
		return
	}
	c.buf.Write(p)
}

func (c *capture) done() {
	if c.over {
		return
	}
	r := c.resp
	s := &stored{status: r.StatusCode, proto: r.Proto, major: r.ProtoMajor, minor: r.ProtoMinor,
		header: r.Header.Clone(), body: c.buf.Bytes()}
	s.size = len(s.body) + len(c.key)
	for k, vs := range s.header {
		s.size += len(k)
		for _, v := range vs {
			s.size += len(v)
		}
	}
	c.rc.c.Store(context.Background(), c.key, s)
}

// recover returns a stale response to req in place of the failure err, or
// nil when there is none or the caller has left.
func (rc *responseCache) recover(caller context.Context, req *http.Request, err error) *http.Response {
	key := rc.keyOf(req)
	if key == "" {
		return nil
	}
	var note fallback.Note
	s, err := rc.c.Recover(fallback.WithNote(caller, &note), key, nil, err)
	if err != nil || s == nil {
		return nil
	}
	h := s.header.Clone()
	h.Set(FallbackHeader, "stale")
	h.Set("Age", strconv.Itoa(int(note.Age.Seconds())))
	return &http.Response{
		Status:        strconv.Itoa(s.status) + " " + http.StatusText(s.status),
		StatusCode:    s.status,
		Proto:         s.proto,
		ProtoMajor:    s.major,
		ProtoMinor:    s.minor,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(s.body)),
		ContentLength: int64(len(s.body)),
		Request:       req,
	}
}
