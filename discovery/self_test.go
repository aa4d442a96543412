package discovery_test

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkrpc/bulwark/discovery"
)

func TestSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	inst, err := discovery.Self(ln.Addr().String(), "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if inst.Addr != ln.Addr().String() || inst.Version != "v1.2.3" || inst.Meta["pid"] != strconv.Itoa(os.Getpid()) {
		t.Fatalf("Self: got %+v", inst)
	}
	if err := discovery.Validate([]discovery.Instance{inst}); err != nil {
		t.Fatalf("Self's instance does not validate: %v", err)
	}
	for _, listen := range []string{":8080", "0.0.0.0:8080", "[::]:8080"} {
		inst, err := discovery.Self(listen, "")
		if err != nil {
			t.Fatalf("Self(%q): %v", listen, err)
		}
		host, port, err := net.SplitHostPort(inst.Addr)
		ip, perr := netip.ParseAddr(host)
		if err != nil || perr != nil || port != "8080" || ip.IsUnspecified() {
			t.Fatalf("Self(%q): address %q, want a reachable IP address and port 8080", listen, inst.Addr)
		}
	}
	for _, tc := range []struct{ listen, version, want string }{
		{"8080", "", "missing port"},
		{"127.0.0.1:0", "", "want a port within [1, 65535]"},
		{"127.0.0.1:http", "", "want a port within [1, 65535]"},
		{"127.0.0.1:8080", "two", `version "two"`},
	} {
		if _, err := discovery.Self(tc.listen, tc.version); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Self(%q, %q): got %v, want an error containing %q", tc.listen, tc.version, err, tc.want)
		}
	}
}
