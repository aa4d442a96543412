package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Config describes a fleet.
type Config struct {
	// HTTP is the number of HTTP endpoints; it must be >= 0.
	HTTP int
	// GRPC is the number of gRPC endpoints; it must be >= 0.
	GRPC int
	// Schedule is what the endpoints do over time. The HTTP endpoints and
	// the gRPC endpoints each follow it, indexed from 0.
	Schedule Schedule
}

// Fleet is a set of running endpoints. Its methods are safe for
// concurrent use.
type Fleet struct {
	cfg   Config
	http  []*httpEndpoint
	grpc  []*grpcEndpoint
	apply func(i int, b Behavior) // applies to HTTP endpoint i and gRPC endpoint i

	mu     sync.Mutex
	cancel context.CancelFunc // ends Play; nil before Begin
	played chan struct{}      // closed when Play has returned
	err    error              // the first error applying a Behavior
	closed bool
}

// Start validates cfg and starts the endpoints, each doing what the
// Schedule says for time 0. The Schedule's clock starts with Begin.
func Start(cfg Config) (*Fleet, error) {
	switch {
	case cfg.HTTP < 0:
		return nil, fmt.Errorf("fleet: Config.HTTP is %d, want >= 0", cfg.HTTP)
	case cfg.GRPC < 0:
		return nil, fmt.Errorf("fleet: Config.GRPC is %d, want >= 0", cfg.GRPC)
	}
	if err := cfg.Schedule.Validate(max(cfg.HTTP, cfg.GRPC)); err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg}
	for i := range cfg.HTTP {
		e, err := newHTTPEndpoint(i)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.http = append(f.http, e)
	}
	for i := range cfg.GRPC {
		e, err := newGRPCEndpoint(i)
		if err != nil {
			f.Close()
			return nil, err
		}
		f.grpc = append(f.grpc, e)
	}
	for i := range max(cfg.HTTP, cfg.GRPC) {
		if err := f.applyTo(i, cfg.Schedule.At(i, 0)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

func (f *Fleet) applyTo(i int, b Behavior) error {
	var errs []error
	if i < len(f.http) {
		errs = append(errs, f.http[i].apply(b))
	}
	if i < len(f.grpc) {
		errs = append(errs, f.grpc[i].apply(b))
	}
	return errors.Join(errs...)
}

// Begin starts the Schedule's clock: from now on the endpoints change
// Behavior at the Schedule's times. A second call does nothing.
func (f *Fleet) Begin() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel != nil || f.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.played = cancel, make(chan struct{})
	go func() {
		defer close(f.played)
		_ = Play(ctx, f.cfg.Schedule, max(len(f.http), len(f.grpc)), func(i int, b Behavior) {
			if err := f.applyTo(i, b); err != nil {
				f.mu.Lock()
				if f.err == nil {
					f.err = fmt.Errorf("fleet: endpoint %d: %w", i, err)
				}
				f.mu.Unlock()
			}
		})
	}()
}

// Err returns the first error met while changing an endpoint's Behavior
// (a port taken by someone else while the endpoint was down), or nil.
func (f *Fleet) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// HTTPURLs returns the base URLs of the HTTP endpoints
// ("http://127.0.0.1:port"), by index.
func (f *Fleet) HTTPURLs() []string {
	urls := make([]string, len(f.http))
	for i, e := range f.http {
		urls[i] = "http://" + e.addr
	}
	return urls
}

// GRPCAddrs returns the host:port of the gRPC endpoints, by index.
func (f *Fleet) GRPCAddrs() []string {
	addrs := make([]string, len(f.grpc))
	for i, e := range f.grpc {
		addrs[i] = e.addr
	}
	return addrs
}

// HTTPArrivals returns how many requests reached each HTTP endpoint so
// far (connections refused are not requests that reached it).
func (f *Fleet) HTTPArrivals() []int64 {
	n := make([]int64, len(f.http))
	for i, e := range f.http {
		n[i] = e.arrivals.Load()
	}
	return n
}

// GRPCArrivals returns how many calls reached each gRPC endpoint so far.
func (f *Fleet) GRPCArrivals() []int64 {
	n := make([]int64, len(f.grpc))
	for i, e := range f.grpc {
		n[i] = e.arrivals.Load()
	}
	return n
}

// Close stops the schedule and every endpoint, and waits for them. It
// returns Err.
func (f *Fleet) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return f.Err()
	}
	f.closed = true
	cancel, played := f.cancel, f.played
	f.mu.Unlock()
	if cancel != nil {
		cancel()
		<-played
	}
	for _, e := range f.http {
		e.close()
	}
	for _, e := range f.grpc {
		e.close()
	}
	return f.Err()
}
