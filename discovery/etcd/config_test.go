package etcd_test

import (
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery/etcd"
)

func TestNewRegistryRejectsBadConfig(t *testing.T) {
	// No etcd needed: a client is never connected before it is used.
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatalf("clientv3.New: %v", err)
	}
	defer c.Close()
	tests := []struct {
		name string
		cfg  etcd.Config
		want string
	}{
		{"endpoints and client", etcd.Config{Endpoints: []string{"a:1"}, Client: c}, "Config.Endpoints"},
		{"dial timeout with client", etcd.Config{Client: c, DialTimeout: time.Second}, "Config.DialTimeout"},
		{"empty endpoint", etcd.Config{Endpoints: []string{"a:1", ""}}, "Config.Endpoints[1]"},
		{"prefix without slash", etcd.Config{Prefix: "/services"}, "Config.Prefix"},
		{"negative lease", etcd.Config{LeaseTTL: -time.Second}, "Config.LeaseTTL"},
		{"fractional lease", etcd.Config{LeaseTTL: 1500 * time.Millisecond}, "Config.LeaseTTL"},
		{"negative dial timeout", etcd.Config{DialTimeout: -1}, "Config.DialTimeout"},
		{"negative request timeout", etcd.Config{RequestTimeout: -1}, "Config.RequestTimeout"},
		{"negative progress interval", etcd.Config{ProgressInterval: -1}, "Config.ProgressInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := etcd.NewRegistry(tt.cfg)
			if err == nil {
				r.Close()
				t.Fatalf("NewRegistry: got nil error, want one naming %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "etcd: ") {
				t.Errorf("NewRegistry: got %q, want an error starting with \"etcd: \" naming %s", err, tt.want)
			}
		})
	}
}

func TestNewRegistryAcceptsZeroConfig(t *testing.T) {
	// The zero Config names etcd's default endpoint; NewRegistry does not
	// wait for it, so this passes whether or not an etcd listens there.
	r, err := etcd.NewRegistry(etcd.Config{})
	if err != nil {
		t.Fatalf("NewRegistry(Config{}): got %v, want nil", err)
	}
	if got, want := r.Client().Endpoints(), []string{"127.0.0.1:2379"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("Endpoints: got %v, want %v", got, want)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}
