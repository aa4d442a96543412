package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
)

// Self returns the Instance of the running process, to give a Registrar.
// listenAddr is where the process listens: a net.Listener's
// Addr().String(), or a listen address such as ":8080". Its port must be
// set (not 0). An empty or unspecified host (0.0.0.0, ::) is replaced by an
// address others can reach: the first global unicast address of the
// machine's interfaces, IPv4 preferred, or the loopback address when there
// is none. version is the API version the process serves; it must parse
// (see ParseVersion) unless empty. Meta holds "hostname" and "pid".
func Self(listenAddr, version string) (Instance, error) {
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return Instance{}, fmt.Errorf("discovery: Self: listen address %q: %w", listenAddr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return Instance{}, fmt.Errorf("discovery: Self: listen address %q: want a port within [1, 65535]", listenAddr)
	}
	if version != "" {
		if _, err := ParseVersion(version); err != nil {
			return Instance{}, fmt.Errorf("discovery: Self: %w", err)
		}
	}
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		host = reachable().String()
	}
	meta := map[string]string{"pid": strconv.Itoa(os.Getpid())}
	if name, err := os.Hostname(); err == nil {
		meta["hostname"] = name
	}
	return Instance{Addr: net.JoinHostPort(host, port), Version: version, Meta: meta}, nil
}

// reachable returns the first global unicast address of the machine's
// interfaces, IPv4 preferred; the IPv4 loopback address when there is none.
func reachable() netip.Addr {
	var v6 netip.Addr
	addrs, _ := net.InterfaceAddrs() // no address known: loopback
	for _, a := range addrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := prefix.Addr().Unmap()
		switch {
		case !ip.IsGlobalUnicast():
		case ip.Is4():
			return ip
		case !v6.IsValid():
			v6 = ip
		}
	}
	if v6.IsValid() {
		return v6
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
