package etcd

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery"
)

// record is an Instance as stored in etcd: JSON with lower-case names, so
// that other tools read and write it too. Unknown fields are ignored, so a
// newer writer does not blind an older reader.
type record struct {
	Addr    string            `json:"addr"`
	Version string            `json:"version,omitempty"`
	Weight  int               `json:"weight,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

// checkService reports whether service may name a service: it is part of
// a key, and a "/" in it would put one service's keys under another's.
func checkService(service string) error {
	switch {
	case service == "":
		return errors.New("etcd: service name is empty")
	case strings.Contains(service, "/"):
		return fmt.Errorf("etcd: service name %q contains \"/\"", service)
	}
	return nil
}

// checkInstance reports whether inst may be registered: an error matching
// discovery.ErrInvalidInstance if not.
func checkInstance(inst discovery.Instance) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("etcd: %w: "+format, append([]any{discovery.ErrInvalidInstance}, args...)...)
	}
	if inst.Addr == "" {
		return bad("Instance.Addr is empty")
	}
	host, port, err := net.SplitHostPort(inst.Addr)
	if err != nil {
		return bad("Instance.Addr %q is not host:port: %w", inst.Addr, err)
	}
	if host == "" || port == "" {
		return bad("Instance.Addr %q is not host:port: want both a host and a port", inst.Addr)
	}
	if inst.Weight < 0 {
		return bad("Instance.Weight is %d, want >= 0", inst.Weight)
	}
	if inst.Version != "" {
		// A version that does not parse would make the instance one that
		// no balancer picks: better refused here, where it can be fixed.
		if _, err := discovery.ParseVersion(inst.Version); err != nil {
			return bad("Instance.Version %q: %w", inst.Version, err)
		}
	}
	return nil
}

// encode returns the stored form of inst.
func encode(inst discovery.Instance) (string, error) {
	b, err := json.Marshal(record{Addr: inst.Addr, Version: inst.Version, Weight: inst.Weight, Meta: inst.Meta})
	if err != nil {
		return "", fmt.Errorf("etcd: encoding instance %q: %w", inst.Addr, err)
	}
	return string(b), nil
}

// decode parses a stored value. A value that is not a JSON object, or
// names no address or a negative weight, is an error: a reader skips it.
func decode(v []byte) (discovery.Instance, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return discovery.Instance{}, err
	}
	switch {
	case r.Addr == "":
		return discovery.Instance{}, errors.New("no addr")
	case r.Weight < 0:
		return discovery.Instance{}, fmt.Errorf("weight %d", r.Weight)
	}
	if len(r.Meta) == 0 {
		r.Meta = nil
	}
	return discovery.Instance{Addr: r.Addr, Version: r.Version, Weight: r.Weight, Meta: r.Meta}, nil
}

// decodeAll returns the set that kvs make, sorted by address (of two keys
// naming one address, the one written last wins), and how many values it
// skipped. It is reset without the indexes that events need.
func decodeAll(kvs []*mvccpb.KeyValue) (list []discovery.Instance, invalid int) {
	es := make([]entry, 0, len(kvs))
	for _, kv := range kvs {
		inst, err := decode(kv.Value)
		if err != nil {
			invalid++
			continue
		}
		es = append(es, entry{inst: inst, rev: kv.ModRevision})
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := strings.Compare(a.inst.Addr, b.inst.Addr); c != 0 {
			return c
		}
		return cmp.Compare(b.rev, a.rev)
	})
	list = make([]discovery.Instance, 0, len(es))
	for i, e := range es {
		if i == 0 || e.inst.Addr != es[i-1].inst.Addr {
			list = append(list, e.inst)
		}
	}
	return list, invalid
}

// entry is one readable key of a service.
type entry struct {
	key  string
	inst discovery.Instance
	rev  int64 // the key's ModRevision: the later write wins a duplicate address
}

// instanceSet is the readable keys of one service, kept up to date from a
// Get and the events after it, and the set of instances they make: one per
// address, sorted by address. An event costs a lookup and a copy of the
// set, not a sort. It is not safe for concurrent use: one watch owns it.
type instanceSet struct {
	keys  map[string]string  // key → the address its value names
	addrs map[string][]entry // address → the keys naming it, nearly always one
	dirty []string           // addresses whose keys changed since list was made
	// list is the set: the latest entry of each address, sorted by
	// address. It is replaced, never modified, so that it can be handed
	// out.
	list []discovery.Instance
}

// reset replaces the set with kvs and returns how many values it skipped.
func (s *instanceSet) reset(kvs []*mvccpb.KeyValue) (invalid int) {
	s.keys = make(map[string]string, len(kvs))
	s.addrs = make(map[string][]entry, len(kvs))
	s.dirty = s.dirty[:0]
	for _, kv := range kvs {
		if !s.put(kv) {
			invalid++
		}
	}
	s.dirty = s.dirty[:0]
	list := make([]discovery.Instance, 0, len(s.addrs))
	for _, es := range s.addrs {
		list = append(list, latest(es).inst)
	}
	slices.SortFunc(list, byAddr)
	s.list = list
	return invalid
}

// apply records ev and reports whether its value was readable (a deletion
// always is). commit makes the new set.
func (s *instanceSet) apply(ev *clientv3.Event) bool {
	s.remove(string(ev.Kv.Key))
	if ev.Type == clientv3.EventTypeDelete {
		return true
	}
	return s.put(ev.Kv)
}

// put records kv, unless its value is unreadable: an instance whose value
// was overwritten by garbage is no longer one. The key must not be
// recorded already.
func (s *instanceSet) put(kv *mvccpb.KeyValue) bool {
	inst, err := decode(kv.Value)
	if err != nil {
		return false
	}
	k := string(kv.Key)
	s.keys[k] = inst.Addr
	s.addrs[inst.Addr] = append(s.addrs[inst.Addr], entry{key: k, inst: inst, rev: kv.ModRevision})
	s.dirty = append(s.dirty, inst.Addr)
	return true
}

// remove forgets key.
func (s *instanceSet) remove(key string) {
	addr, ok := s.keys[key]
	if !ok {
		return
	}
	delete(s.keys, key)
	es := slices.DeleteFunc(s.addrs[addr], func(e entry) bool { return e.key == key })
	if len(es) == 0 {
		delete(s.addrs, addr)
	} else {
		s.addrs[addr] = es
	}
	s.dirty = append(s.dirty, addr)
}

// commit brings the set up to date with the events applied since the last
// commit and reports whether it changed.
func (s *instanceSet) commit() bool {
	var next []discovery.Instance // a copy of list, made on the first change
	for _, addr := range s.dirty {
		cur := next
		if cur == nil {
			cur = s.list
		}
		i, found := slices.BinarySearchFunc(cur, addr, func(inst discovery.Instance, a string) int {
			return strings.Compare(inst.Addr, a)
		})
		es, ok := s.addrs[addr]
		if found && ok && same(cur[i], latest(es).inst) || !found && !ok {
			continue
		}
		if next == nil {
			next = slices.Clone(s.list)
		}
		switch {
		case found && ok:
			next[i] = latest(es).inst
		case found:
			next = slices.Delete(next, i, i+1)
		default:
			next = slices.Insert(next, i, latest(es).inst)
		}
	}
	s.dirty = s.dirty[:0]
	if next == nil {
		return false
	}
	s.list = next
	return true
}

// latest returns the entry of es written last.
func latest(es []entry) entry {
	return slices.MaxFunc(es, func(a, b entry) int { return cmp.Compare(a.rev, b.rev) })
}

func byAddr(a, b discovery.Instance) int { return strings.Compare(a.Addr, b.Addr) }

// same reports whether x and y are the same instance, field by field.
func same(x, y discovery.Instance) bool {
	return x.Addr == y.Addr && x.Version == y.Version && x.Weight == y.Weight && maps.Equal(x.Meta, y.Meta)
}

// equal reports whether a and b, both sorted by address, hold the same
// instances.
func equal(a, b []discovery.Instance) bool { return slices.EqualFunc(a, b, same) }
