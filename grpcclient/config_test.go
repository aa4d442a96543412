package grpcclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/bulkhead"
	"github.com/bulwarkrpc/bulwark/grpcclient"
	"github.com/bulwarkrpc/bulwark/hedge"
)

func TestConfigValid(t *testing.T) {
	for name, cfg := range map[string]grpcclient.Config{
		"zero":     {},
		"standard": grpcclient.Standard(),
		"methods": {Methods: map[string]grpcclient.Method{
			unaryMethod:             {Hedge: &hedge.Config{}, Fallback: &grpcclient.FallbackConfig{Reply: &testpb.SimpleResponse{}}},
			"/" + testService + "/": {Fallback: &grpcclient.FallbackConfig{Cache: &grpcclient.CacheConfig{}}},
			"/unregistered.Svc/M":   {Fallback: &grpcclient.FallbackConfig{Reply: &testpb.Empty{}}},
			emptyMethod:             {},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			ic, err := grpcclient.New(cfg)
			if err != nil {
				t.Fatalf("got %v, want a valid Config", err)
			}
			_ = ic.Close()
			if _, err := grpcclient.DialOptions(cfg); err != nil {
				t.Fatalf("DialOptions: got %v, want no error", err)
			}
		})
	}
}

// Every invalid value is refused at construction with an error naming the
// field, by New and by DialOptions alike.
func TestConfigInvalid(t *testing.T) {
	noop := func(context.Context, string, proto.Message, proto.Message, error) error { return nil }
	tests := []struct {
		name string
		cfg  grpcclient.Config
		want string
	}{
		{"negative attempt timeout", grpcclient.Config{AttemptTimeout: -time.Second}, "Config.AttemptTimeout is -1s"},
		{"negative total timeout", grpcclient.Config{TotalTimeout: -time.Second}, "Config.TotalTimeout is -1s"},
		{"attempt beyond total", grpcclient.Config{TotalTimeout: time.Second, AttemptTimeout: 2 * time.Second}, "Config.AttemptTimeout (2s) exceeds Config.TotalTimeout (1s)"},
		{"negative stream timeout", grpcclient.Config{StreamTimeout: -1}, "Config.StreamTimeout is -1ns"},
		{"breaker", grpcclient.Config{Breaker: &breaker.Config{FailureRatio: 2}}, "Config.Breaker: breaker: Config.FailureRatio is 2"},
		{"bulkhead", grpcclient.Config{Bulkhead: &bulkhead.Config{Limit: -1}}, "Config.Bulkhead: bulkhead: Config.Limit is -1"},
		{"method without slash", grpcclient.Config{Methods: map[string]grpcclient.Method{"UnaryCall": {}}}, `Config.Methods["UnaryCall"]: want a full method name`},
		{"method without service", grpcclient.Config{Methods: map[string]grpcclient.Method{"//UnaryCall": {}}}, `Config.Methods["//UnaryCall"]`},
		{"method with three parts", grpcclient.Config{Methods: map[string]grpcclient.Method{"/a/b/c": {}}}, `Config.Methods["/a/b/c"]`},
		{"hedge", grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Hedge: &hedge.Config{Delay: -1}}}},
			`Config.Methods["` + unaryMethod + `"].Hedge: hedge: Config.Delay is -1ns`},
		{"fallback with nothing", grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Fallback: &grpcclient.FallbackConfig{}}}},
			`Config.Methods["` + unaryMethod + `"].Fallback sets 0 of Reply, Func and Cache, want exactly one`},
		{"fallback with two", grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Fallback: &grpcclient.FallbackConfig{
			Reply: &testpb.SimpleResponse{}, Func: noop}}}},
			`Config.Methods["` + unaryMethod + `"].Fallback sets 2 of Reply, Func and Cache`},
		{"fallback reply of another type", grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Fallback: &grpcclient.FallbackConfig{
			Reply: &testpb.Empty{}}}}},
			`Config.Methods["` + unaryMethod + `"].Fallback.Reply is a grpc.testing.Empty, want grpc.testing.SimpleResponse`},
		{"fallback reply a nil pointer", grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Fallback: &grpcclient.FallbackConfig{
			Reply: (*testpb.SimpleResponse)(nil)}}}},
			`Config.Methods["` + unaryMethod + `"].Fallback.Reply is a nil *grpc_testing.SimpleResponse`},
		{"cache", grpcclient.Config{Methods: map[string]grpcclient.Method{unaryMethod: {Fallback: &grpcclient.FallbackConfig{
			Cache: &grpcclient.CacheConfig{FreshFor: time.Minute, MaxStale: time.Second}}}}},
			`Config.Methods["` + unaryMethod + `"].Fallback.Cache: fallback: CacheConfig.MaxStale (1s) is shorter than CacheConfig.FreshFor (1m0s)`},
		{"service config", grpcclient.Config{ServiceConfig: &grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{
			{Name: []grpcclient.Name{{}}, RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 1}}}}},
			"Config.ServiceConfig.MethodConfig[0].RetryPolicy.MaxAttempts is 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic, err := grpcclient.New(tt.cfg)
			if err == nil {
				_ = ic.Close()
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "grpcclient: ") {
				t.Fatalf("got %q, want it to contain %q", err, tt.want)
			}
			if _, err2 := grpcclient.DialOptions(tt.cfg); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("DialOptions: got %v, want %v", err2, err)
			}
		})
	}
}

// Standard documents its values: a change to them must be deliberate.
func TestStandard(t *testing.T) {
	cfg := grpcclient.Standard()
	if cfg.AttemptTimeout != 10*time.Second || cfg.TotalTimeout != 30*time.Second || cfg.StreamTimeout != 0 {
		t.Errorf("got timeouts %v/%v/%v, want 10s/30s/0", cfg.AttemptTimeout, cfg.TotalTimeout, cfg.StreamTimeout)
	}
	if cfg.Breaker == nil || cfg.Bulkhead == nil || cfg.Bulkhead.Limit != 256 {
		t.Errorf("got breaker %v and bulkhead %v, want both, with a limit of 256", cfg.Breaker, cfg.Bulkhead)
	}
	if cfg.ServiceConfig == nil || cfg.ServiceConfig.RetryThrottling == nil || len(cfg.ServiceConfig.MethodConfig) != 0 {
		t.Errorf("got service config %+v, want retry throttling and no retry policy", cfg.ServiceConfig)
	}
	if cfg.Methods != nil {
		t.Errorf("got methods %v, want none: hedging and fallback are opt-in", cfg.Methods)
	}
	// Each call returns sections of its own.
	cfg.Bulkhead.Limit = 1
	if grpcclient.Standard().Bulkhead.Limit != 256 {
		t.Error("changing one Standard Config changed the next")
	}
	ic, err := grpcclient.New(grpcclient.Standard())
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	// The throttle of retries is left out until a method has a retry
	// policy: alone it would cost every call and change nothing.
	if got := ic.ServiceConfig(); got != "" {
		t.Errorf("got service config %s, want none", got)
	}
	cfg = grpcclient.Standard()
	cfg.ServiceConfig.MethodConfig = []grpcclient.MethodConfig{{Name: []grpcclient.Name{{}}, RetryPolicy: &grpcclient.RetryPolicy{RetryableStatusCodes: []codes.Code{codes.Unavailable}}}}
	ic, err = grpcclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if got, want := ic.ServiceConfig(), `"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}`; !strings.HasSuffix(got, want) {
		t.Errorf("got service config %s, want it to end in %s", got, want)
	}
}
