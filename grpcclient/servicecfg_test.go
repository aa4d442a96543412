package grpcclient_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/bulwarkrpc/bulwark/breaker"
	"github.com/bulwarkrpc/bulwark/grpcclient"
)

func TestServiceConfigJSON(t *testing.T) {
	yes := true
	sc := grpcclient.ServiceConfig{
		LoadBalancingPolicy: "round_robin",
		MethodConfig: []grpcclient.MethodConfig{
			{
				Name:         []grpcclient.Name{{Service: testService, Method: "UnaryCall"}, {Service: testService, Method: "EmptyCall"}},
				WaitForReady: &yes,
				Timeout:      1500 * time.Millisecond,
				RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 4, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 2 * time.Second,
					BackoffMultiplier: 1.5, RetryableStatusCodes: []codes.Code{codes.Unavailable, codes.Canceled, codes.Unavailable}},
			},
			{Name: []grpcclient.Name{{}}, RetryPolicy: &grpcclient.RetryPolicy{}, MaxResponseMessageBytes: 1 << 20},
		},
		RetryThrottling: &grpcclient.RetryThrottling{},
	}
	got, err := sc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"loadBalancingConfig":[{"round_robin":{}}],"methodConfig":[` +
		`{"name":[{"service":"grpc.testing.TestService","method":"UnaryCall"},{"service":"grpc.testing.TestService","method":"EmptyCall"}],` +
		`"waitForReady":true,"timeout":"1.5s","retryPolicy":{"maxAttempts":4,"initialBackoff":"0.01s","maxBackoff":"2s","backoffMultiplier":1.5,` +
		`"retryableStatusCodes":["UNAVAILABLE","CANCELLED"]}},` +
		`{"name":[{}],"maxResponseMessageBytes":1048576,"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s",` +
		`"backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}],` +
		`"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Fatal("not valid JSON")
	}
	mustAccept(t, got)
	zero, err := grpcclient.ServiceConfig{}.JSON()
	if err != nil || zero != "{}" {
		t.Fatalf("zero ServiceConfig: got %q, %v; want {}", zero, err)
	}
	mustAccept(t, zero)
}

// mustAccept fails unless grpc-go accepts js as a default service config.
func mustAccept(t *testing.T, js string) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(js))
	if err != nil {
		t.Fatalf("grpc-go refuses %s: %v", js, err)
	}
	_ = conn.Close()
}

func TestServiceConfigInvalid(t *testing.T) {
	name := []grpcclient.Name{{Service: testService}}
	policy := func(rp grpcclient.RetryPolicy) grpcclient.ServiceConfig {
		return grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: name, RetryPolicy: &rp}}}
	}
	tests := []struct {
		name string
		sc   grpcclient.ServiceConfig
		want string
	}{
		{"unknown balancer", grpcclient.ServiceConfig{LoadBalancingPolicy: "fastest"}, `ServiceConfig.LoadBalancingPolicy is "fastest"`},
		{"no name", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{}}}, "ServiceConfig.MethodConfig[0].Name is empty"},
		{"method without service", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: []grpcclient.Name{{Method: "M"}}}}},
			`ServiceConfig.MethodConfig[0].Name[0] has Method "M" but no Service`},
		{"service with a slash", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: []grpcclient.Name{{Service: "/a.B"}}}}},
			`ServiceConfig.MethodConfig[0].Name[0].Service is "/a.B"`},
		{"method with a slash", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: []grpcclient.Name{{Service: "a.B", Method: "x/y"}}}}},
			`ServiceConfig.MethodConfig[0].Name[0].Method is "x/y"`},
		{"duplicate name", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: name}, {Name: name}}},
			"ServiceConfig.MethodConfig[1].Name[0] names /grpc.testing.TestService/* again (first in ServiceConfig.MethodConfig[0].Name[0])"},
		{"negative timeout", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: name, Timeout: -1}}}, "ServiceConfig.MethodConfig[0].Timeout is -1ns"},
		{"negative request size", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: name, MaxRequestMessageBytes: -1}}}, "MaxRequestMessageBytes is -1"},
		{"negative response size", grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{Name: name, MaxResponseMessageBytes: -1}}}, "MaxResponseMessageBytes is -1"},
		{"one attempt", policy(grpcclient.RetryPolicy{MaxAttempts: 1}), "ServiceConfig.MethodConfig[0].RetryPolicy.MaxAttempts is 1, want >= 2"},
		{"negative attempts", policy(grpcclient.RetryPolicy{MaxAttempts: -3}), "RetryPolicy.MaxAttempts is -3"},
		{"negative initial backoff", policy(grpcclient.RetryPolicy{InitialBackoff: -1}), "RetryPolicy.InitialBackoff is -1ns"},
		{"negative max backoff", policy(grpcclient.RetryPolicy{MaxBackoff: -1}), "RetryPolicy.MaxBackoff is -1ns"},
		{"max below initial", policy(grpcclient.RetryPolicy{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}),
			"RetryPolicy.MaxBackoff (1ms) is shorter than ServiceConfig.MethodConfig[0].RetryPolicy.InitialBackoff (1s)"},
		{"shrinking backoff", policy(grpcclient.RetryPolicy{BackoffMultiplier: 0.5}), "RetryPolicy.BackoffMultiplier is 0.5"},
		{"NaN multiplier", policy(grpcclient.RetryPolicy{BackoffMultiplier: math.NaN()}), "RetryPolicy.BackoffMultiplier is NaN"},
		{"retry OK", policy(grpcclient.RetryPolicy{RetryableStatusCodes: []codes.Code{codes.Unavailable, codes.OK}}), "RetryPolicy.RetryableStatusCodes[1] is OK"},
		{"unknown code", policy(grpcclient.RetryPolicy{RetryableStatusCodes: []codes.Code{99}}), "RetryPolicy.RetryableStatusCodes[0] is 99"},
		{"too many tokens", grpcclient.ServiceConfig{RetryThrottling: &grpcclient.RetryThrottling{MaxTokens: 1001}}, "ServiceConfig.RetryThrottling.MaxTokens is 1001"},
		{"negative tokens", grpcclient.ServiceConfig{RetryThrottling: &grpcclient.RetryThrottling{MaxTokens: -1}}, "RetryThrottling.MaxTokens is -1"},
		{"negative ratio", grpcclient.ServiceConfig{RetryThrottling: &grpcclient.RetryThrottling{TokenRatio: -0.1}}, "RetryThrottling.TokenRatio is -0.1"},
		{"ratio grpc-go reads as 0", grpcclient.ServiceConfig{RetryThrottling: &grpcclient.RetryThrottling{TokenRatio: 0.0001}}, "RetryThrottling.TokenRatio is 0.0001, want >= 0.001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, err := tt.sc.JSON()
			if err == nil {
				t.Fatalf("got %s, want an error containing %q", js, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// grpc-go's retries happen below the interceptors: a burst of Unavailable
// answers is retried by grpc-go, the call succeeds, and the breaker sees
// one successful call.
func TestGRPCRetriesBelowTheInterceptors(t *testing.T) {
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if srv.calls.Load() <= 2 {
			return echo(request("", codes.Unavailable))
		}
		return echo(req)
	}
	client, ic := dial(t, srv.addr, grpcclient.Config{
		Breaker: &breaker.Config{},
		ServiceConfig: &grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{
			Name:        []grpcclient.Name{{Service: testService}},
			RetryPolicy: &grpcclient.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		}}},
	})
	resp, err := client.UnaryCall(wait(t), request("third time lucky", codes.OK))
	if err != nil {
		t.Fatalf("got %v, want grpc-go to retry the Unavailable answers", err)
	}
	if string(resp.GetPayload().GetBody()) != "third time lucky" {
		t.Fatalf("got %q, want the request's payload", resp.GetPayload().GetBody())
	}
	if got := srv.calls.Load(); got != 3 {
		t.Fatalf("server saw %d calls, want 3", got)
	}
	if c := ic.Breakers().Counts(unaryMethod); c.Successes != 1 || c.Failures != 0 {
		t.Fatalf("breaker counts %+v, want the one call grpc-go retried, as a success", c)
	}
}

// A policy of more than 5 attempts needs grpc.WithMaxCallAttempts, which
// DialOptions adds.
func TestMoreThanFiveAttempts(t *testing.T) {
	srv := newServer(t, &service{})
	srv.unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		if srv.calls.Load() <= 6 {
			return echo(request("", codes.Unavailable))
		}
		return echo(req)
	}
	client, _ := dial(t, srv.addr, grpcclient.Config{
		ServiceConfig: &grpcclient.ServiceConfig{MethodConfig: []grpcclient.MethodConfig{{
			Name:        []grpcclient.Name{{}},
			RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 7, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		}}},
	})
	if _, err := client.UnaryCall(wait(t), request("x", codes.OK)); err != nil {
		t.Fatalf("got %v, want the seventh attempt to succeed", err)
	}
	if got := srv.calls.Load(); got != 7 {
		t.Fatalf("server saw %d calls, want 7", got)
	}
}

// RetryThrottling is grpc-go's retry budget: with 4 tokens (retries stop
// at 2 or fewer), the first failing call is tried twice, the second once,
// instead of 5 times each.
func TestRetryThrottling(t *testing.T) {
	srv := newServer(t, &service{})
	client, _ := dial(t, srv.addr, grpcclient.Config{
		ServiceConfig: &grpcclient.ServiceConfig{
			MethodConfig: []grpcclient.MethodConfig{{
				Name:        []grpcclient.Name{{}},
				RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
			}},
			RetryThrottling: &grpcclient.RetryThrottling{MaxTokens: 4, TokenRatio: 0.1},
		},
	})
	for range 2 {
		_, err := client.UnaryCall(wait(t), request("", codes.Unavailable))
		mustCode(t, err, codes.Unavailable)
	}
	if got := srv.calls.Load(); got != 3 {
		t.Fatalf("server saw %d calls, want 3: 2 for the first call, then throttled", got)
	}
}

// Whatever JSON accepts, grpc-go accepts too: no part of the service
// config is silently dropped.
func FuzzRetryPolicy(f *testing.F) {
	f.Add(0, int64(0), int64(0), 0.0, uint32(14), 0.0, 0.0)
	f.Add(5, int64(1), int64(1), 1.0, uint32(4), 1000.0, 0.001)
	f.Add(2, int64(1e9), int64(2e9), 3.5, uint32(0), 0.5, 10.0)
	f.Add(1, int64(-1), int64(0), 0.5, uint32(17), 1001.0, -1.0)
	f.Fuzz(func(t *testing.T, attempts int, initial, maxBackoff int64, mult float64, code uint32, tokens, ratio float64) {
		sc := grpcclient.ServiceConfig{
			MethodConfig: []grpcclient.MethodConfig{{
				Name: []grpcclient.Name{{Service: testService}},
				RetryPolicy: &grpcclient.RetryPolicy{MaxAttempts: attempts, InitialBackoff: time.Duration(initial),
					MaxBackoff: time.Duration(maxBackoff), BackoffMultiplier: mult, RetryableStatusCodes: []codes.Code{codes.Code(code)}},
			}},
			RetryThrottling: &grpcclient.RetryThrottling{MaxTokens: tokens, TokenRatio: ratio},
		}
		js, err := sc.JSON()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "grpcclient: ServiceConfig.") {
				t.Fatalf("error %q names no field", err)
			}
			return
		}
		mustAccept(t, js)
	})
}

func TestServiceConfigFromConfigReachesGRPC(t *testing.T) {
	// An unknown method name in the service config is harmless; a
	// ServiceConfig that grpc-go rejected would make NewClient fail.
	ic, err := grpcclient.New(grpcclient.Config{ServiceConfig: &grpcclient.ServiceConfig{
		LoadBalancingPolicy: "round_robin",
		MethodConfig:        []grpcclient.MethodConfig{{Name: []grpcclient.Name{{Service: "nope.Nothing"}}, Timeout: time.Second}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if !strings.Contains(ic.ServiceConfig(), `"loadBalancingConfig":[{"round_robin":{}}]`) {
		t.Fatalf("got %s, want the round_robin policy", ic.ServiceConfig())
	}
	mustAccept(t, ic.ServiceConfig())
}
