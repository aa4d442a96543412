package etcd

import (
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/metric"
)

const (
	defaultEndpoint         = "127.0.0.1:2379"
	defaultPrefix           = "/bulwark/services/"
	defaultLeaseTTL         = 10 * time.Second
	defaultRequestTimeout   = 5 * time.Second
	defaultProgressInterval = 5 * time.Second
)

// Config configures a Registry. The zero Config is valid: it talks to the
// etcd at 127.0.0.1:2379, keeps instances under "/bulwark/services/" with a
// 10s lease, bounds each request by 5s and confirms every watched set every
// 5s.
type Config struct {
	// Endpoints are the etcd client URLs ("host:port" or "http://host:port")
	// of a client NewRegistry makes and Close closes. That client pings
	// etcd every 10s, so that a connection that died silently is noticed
	// within 15s, and logs as the etcd client does by default (warnings,
	// to standard error): pass a Client to choose otherwise. Zero means
	// 127.0.0.1:2379 unless Client is set; setting both is an error.
	Endpoints []string
	// Client is an etcd client to use instead of making one. The Registry
	// does not close it: its owner does, after the Registry's Close. Each
	// Watch opens a gRPC stream of its own on it (etcd confirms a stream's
	// watches only together). Nil means a client of Endpoints.
	Client *clientv3.Client
	// Prefix is the key under which services are kept: an instance of
	// service s listening on addr is the key Prefix+s+"/"+addr. It must end
	// in "/". Zero means "/bulwark/services/".
	Prefix string
	// LeaseTTL is how long a registered instance outlives its process: the
	// lease its key is attached to expires LeaseTTL after the last
	// keepalive. etcd counts in whole seconds, so it must be a whole
	// number of seconds, and an etcd server may raise it to its own
	// minimum. Zero means 10s.
	LeaseTTL time.Duration
	// DialTimeout is how long NewRegistry waits for etcd to answer before
	// it gives up with an error, for a client it makes (with Endpoints);
	// it is also that client's own DialTimeout. Setting it with Client is
	// an error, since it would not apply. Zero means NewRegistry does not
	// wait: the client connects in the background, and a process may
	// start while etcd is down.
	DialTimeout time.Duration
	// RequestTimeout bounds each request to etcd (a Get, a lease grant or
	// revocation, a put) besides the caller's context: the etcd client
	// waits for a connection as long as its context allows, and an
	// unreachable etcd must be noticed so that Resolve can fall back on the
	// last set it knew. Zero means 5s.
	RequestTimeout time.Duration
	// ProgressInterval is how often a watch asks etcd to confirm that it is
	// current. A confirmation resets the staleness metric, so while etcd is
	// reachable staleness stays below about ProgressInterval; a watch left
	// unconfirmed for three intervals is started again, its keys read
	// anew. Zero means 5s.
	ProgressInterval time.Duration
	// MeterProvider receives the metrics. Nil means the global provider.
	MeterProvider metric.MeterProvider
}

// normalize validates c and returns it with its defaults filled in.
func (c Config) normalize() (Config, error) {
	switch {
	case c.Client != nil && len(c.Endpoints) > 0:
		return c, fmt.Errorf("etcd: Config.Endpoints is %q and Config.Client is set, want one of them", c.Endpoints)
	case c.Client != nil && c.DialTimeout != 0:
		return c, fmt.Errorf("etcd: Config.DialTimeout is %v and Config.Client is set, want 0 (it applies only to a client NewRegistry makes)", c.DialTimeout)
	case c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/"):
		return c, fmt.Errorf("etcd: Config.Prefix is %q, want it to end in \"/\"", c.Prefix)
	case c.LeaseTTL < 0 || c.LeaseTTL%time.Second != 0:
		return c, fmt.Errorf("etcd: Config.LeaseTTL is %v, want a whole number of seconds >= 0", c.LeaseTTL)
	case c.DialTimeout < 0:
		return c, fmt.Errorf("etcd: Config.DialTimeout is %v, want >= 0", c.DialTimeout)
	case c.RequestTimeout < 0:
		return c, fmt.Errorf("etcd: Config.RequestTimeout is %v, want >= 0", c.RequestTimeout)
	case c.ProgressInterval < 0:
		return c, fmt.Errorf("etcd: Config.ProgressInterval is %v, want >= 0", c.ProgressInterval)
	}
	for i, e := range c.Endpoints {
		if e == "" {
			return c, fmt.Errorf("etcd: Config.Endpoints[%d] is empty", i)
		}
	}
	if c.Client == nil && len(c.Endpoints) == 0 {
		c.Endpoints = []string{defaultEndpoint}
	}
	if c.Prefix == "" {
		c.Prefix = defaultPrefix
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = defaultLeaseTTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = defaultProgressInterval
	}
	return c, nil
}
