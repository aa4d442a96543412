package etcd

// Internal tests: the instance set's cost per change, and fuzzing of the
// stored-value parser, without an etcd in the way.

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkrpc/bulwark/discovery"
)

// BenchmarkInstanceSetChange is the CPU cost a Watch adds to one event on
// a service of 1,000 instances: decode the value, make the new set (a
// copy with one instance replaced) and copy it for update.
func BenchmarkInstanceSetChange(b *testing.B) {
	const n = 1000
	kvs := make([]*mvccpb.KeyValue, n)
	for i := range kvs {
		addr := fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)
		kvs[i] = &mvccpb.KeyValue{Key: []byte("/s/users/" + addr), ModRevision: int64(i + 1),
			Value: fmt.Appendf(nil, `{"addr":%q,"version":"1.4.2","meta":{"zone":"eu-%d"}}`, addr, i%3)}
	}
	var s instanceSet
	s.reset(kvs)
	evs := [2]*clientv3.Event{
		{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: kvs[0].Key, ModRevision: n + 1, Value: []byte(`{"addr":"10.0.0.0:8080","weight":2}`)}},
		{Type: clientv3.EventTypePut, Kv: &mvccpb.KeyValue{Key: kvs[0].Key, ModRevision: n + 2, Value: []byte(`{"addr":"10.0.0.0:8080","weight":1}`)}},
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.apply(evs[i%2])
		i++
		if !s.commit() {
			b.Fatal("the set did not change")
		}
		_ = slices.Clone(s.list)
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range []string{
		`{"addr":"a:1","version":"1.2.3","weight":2,"meta":{"k":"v"}}`,
		`{"addr":"a:1"}`, `{"addr":""}`, `{"addr":"a:1","weight":-1}`, `null`, `[]`, `{`, ``,
		`{"addr":"a:1","meta":{}}`, `{"addr":"a:1","extra":[1,2]}`,
	} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		inst, err := decode(v)
		if err != nil {
			return
		}
		if inst.Addr == "" || inst.Weight < 0 {
			t.Fatalf("decode(%q): got %+v, want an error for an empty addr or a negative weight", v, inst)
		}
		// What decode accepts survives a round trip through encode.
		enc, err := encode(inst)
		if err != nil {
			t.Fatalf("encode(%+v): %v", inst, err)
		}
		again, err := decode([]byte(enc))
		if err != nil || again.Addr != inst.Addr || again.Version != inst.Version || again.Weight != inst.Weight || !maps.Equal(again.Meta, inst.Meta) {
			t.Fatalf("decode(encode(%+v)): got %+v, %v, want the same", inst, again, err)
		}
	})
}

func TestInstanceSetListsSortedAndDeduplicated(t *testing.T) {
	kv := func(k, v string, rev int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), ModRevision: rev}
	}
	tests := []struct {
		name string
		kvs  []*mvccpb.KeyValue
		want []discovery.Instance
		bad  int
	}{
		{"empty", nil, []discovery.Instance{}, 0},
		{"sorted by address", []*mvccpb.KeyValue{
			kv("k1", `{"addr":"b:2"}`, 1), kv("k2", `{"addr":"a:1"}`, 2),
		}, []discovery.Instance{{Addr: "a:1"}, {Addr: "b:2"}}, 0},
		{"later duplicate wins", []*mvccpb.KeyValue{
			kv("k1", `{"addr":"a:1","weight":1}`, 5), kv("k2", `{"addr":"a:1","weight":2}`, 7), kv("k3", `{"addr":"a:1","weight":3}`, 6),
		}, []discovery.Instance{{Addr: "a:1", Weight: 2}}, 0},
		{"unreadable skipped", []*mvccpb.KeyValue{
			kv("k1", `x`, 1), kv("k2", `{"addr":"a:1"}`, 2), kv("k3", `{"weight":1}`, 3),
		}, []discovery.Instance{{Addr: "a:1"}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s instanceSet
			if bad := s.reset(tt.kvs); bad != tt.bad {
				t.Errorf("reset: got %d unreadable, want %d", bad, tt.bad)
			}
			if got := s.list; !equal(got, tt.want) {
				t.Errorf("reset: got %+v, want %+v", got, tt.want)
			}
			got, bad := decodeAll(tt.kvs)
			if !equal(got, tt.want) || bad != tt.bad {
				t.Errorf("decodeAll: got %+v, %d unreadable, want %+v, %d", got, bad, tt.want, tt.bad)
			}
		})
	}
}
