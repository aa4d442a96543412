package grpcclient

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
)

// ServiceConfig is the part of a gRPC service config that the client
// controls: grpc-go's own retries (retryPolicy), their throttling
// (retryThrottling), per-method deadlines and the load-balancing policy. JSON
// turns it into the document grpc.WithDefaultServiceConfig takes; Config's
// ServiceConfig field does that for DialOptions.
//
// grpc-go retries below the interceptors: an interceptor sees one call, and
// the attempts grpc-go makes for it — transparent retries of attempts that
// never reached the server, retries by retryPolicy after the backoff or the
// server's pushback (grpc-retry-pushback-ms) — happen inside that one call,
// within its deadline. The breaker and bulkhead of this package therefore
// judge and count the call, not each of grpc-go's attempts; grpc-go's retry
// budget is retryThrottling, not a bulwark retry.Budget.
//
// The zero ServiceConfig is valid and says nothing: grpc-go's defaults
// apply. grpc-go silently ignores parts of a service config it finds
// invalid (a retryPolicy with maxAttempts 1, an unknown load-balancing
// policy); JSON refuses them instead, with an error naming the field.
type ServiceConfig struct {
	// MethodConfig configures groups of methods. Nil means none.
	MethodConfig []MethodConfig
	// RetryThrottling stops grpc-go's retries of every method while too
	// many calls fail. Nil means no throttling.
	RetryThrottling *RetryThrottling
	// LoadBalancingPolicy names a registered balancer, such as
	// "round_robin". Zero means grpc-go's default, pick_first.
	LoadBalancingPolicy string
}

// MethodConfig configures the methods it names.
type MethodConfig struct {
	// Name lists the methods configured: a Name with Service and Method
	// names one method, a Name with only Service every method of the
	// service, and the zero Name every method of every service (the
	// default for methods no other MethodConfig names). It must not be
	// empty, and a method must not be named twice in a ServiceConfig.
	Name []Name
	// WaitForReady makes calls wait for a connection instead of failing
	// at once while none is ready. Nil means grpc-go's default (fail at
	// once) or the call's own grpc.WaitForReady option.
	WaitForReady *bool
	// Timeout bounds each call of the methods, all of grpc-go's retries
	// included; the caller's deadline and the interceptors' attempt
	// deadline still apply, the earliest wins. Zero means none.
	Timeout time.Duration
	// MaxRequestMessageBytes bounds the size of a request message. Zero
	// means grpc-go's default.
	MaxRequestMessageBytes int64
	// MaxResponseMessageBytes bounds the size of a response message. Zero
	// means grpc-go's default.
	MaxResponseMessageBytes int64
	// RetryPolicy makes grpc-go retry calls of the methods that end with
	// one of its status codes. Give it only to methods that are safe to
	// repeat. Nil means no retries but grpc-go's transparent ones (of
	// attempts that never reached the server).
	RetryPolicy *RetryPolicy
}

// Name names a gRPC service, or one of its methods.
type Name struct {
	// Service is the fully qualified service name, such as
	// "grpc.testing.TestService". Zero, with a zero Method, means every
	// service.
	Service string
	// Method is the method name, such as "UnaryCall". Zero means every
	// method of Service.
	Method string
}

// RetryPolicy is grpc-go's retry policy for a group of methods (gRFC A6).
// The zero RetryPolicy is valid: up to 3 attempts of calls that end with
// Unavailable, the n-th retry after a random wait of up to
// min(100ms·2^(n-1), 1s).
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of a call, the first included. Zero
	// means 3; otherwise it must be >= 2. grpc-go caps it at 5 unless told
	// otherwise with grpc.WithMaxCallAttempts, which DialOptions adds when
	// a policy asks for more.
	MaxAttempts int
	// InitialBackoff bounds the wait before the first retry. Zero means
	// 100ms; it must be >= 0.
	InitialBackoff time.Duration
	// MaxBackoff bounds every wait. Zero means 1s (or InitialBackoff, when
	// longer); it must not be shorter than InitialBackoff.
	MaxBackoff time.Duration
	// BackoffMultiplier is the growth of the bound from one retry to the
	// next. Zero means 2; it must be >= 1.
	BackoffMultiplier float64
	// RetryableStatusCodes are the status codes that are retried. Nil
	// means Unavailable only; OK cannot be retried.
	RetryableStatusCodes []codes.Code
}

// RetryThrottling is grpc-go's retry budget (gRFC A6): a token count that
// starts at MaxTokens, loses one for every failed call and gains TokenRatio
// for every successful one; while it is at or below MaxTokens/2, grpc-go
// retries nothing. The zero RetryThrottling is valid: 10 tokens, 0.1 per
// success — retries stop after about 5 failures more than a tenth of the
// successes.
type RetryThrottling struct {
	// MaxTokens is the size of the bucket. Zero means 10; it must be
	// within (0, 1000].
	MaxTokens float64
	// TokenRatio is what a successful call gives back. Zero means 0.1; it
	// must be > 0, and grpc-go reads only 3 decimal places.
	TokenRatio float64
}

// Defaults of the service-config types, stated in their field comments.
const (
	defaultRetryAttempts  = 3
	defaultInitialBackoff = 100 * time.Millisecond
	defaultMaxBackoff     = time.Second
	defaultMultiplier     = 2
	defaultMaxTokens      = 10
	defaultTokenRatio     = 0.1
	// grpcMaxAttempts is grpc-go's cap on attempts unless
	// grpc.WithMaxCallAttempts says otherwise.
	grpcMaxAttempts = 5
)

// JSON validates sc and returns it as a service-config document for
// grpc.WithDefaultServiceConfig. An invalid field is an error naming it,
// such as "grpcclient: ServiceConfig.MethodConfig[0].RetryPolicy.MaxAttempts
// is 1, want >= 2".
func (sc ServiceConfig) JSON() (string, error) {
	doc, _, err := sc.document("ServiceConfig")
	if err != nil {
		return "", err
	}
	return jsonOf(doc)
}

// The JSON document, with grpc-go's field names.
type (
	jsonServiceConfig struct {
		LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig,omitempty"`
		MethodConfig        []jsonMethodConfig    `json:"methodConfig,omitempty"`
		RetryThrottling     *jsonThrottling       `json:"retryThrottling,omitempty"`
	}
	jsonMethodConfig struct {
		Name                    []jsonName       `json:"name"`
		WaitForReady            *bool            `json:"waitForReady,omitempty"`
		Timeout                 string           `json:"timeout,omitempty"`
		MaxRequestMessageBytes  int64            `json:"maxRequestMessageBytes,omitempty"`
		MaxResponseMessageBytes int64            `json:"maxResponseMessageBytes,omitempty"`
		RetryPolicy             *jsonRetryPolicy `json:"retryPolicy,omitempty"`
	}
	jsonName struct {
		Service string `json:"service,omitempty"`
		Method  string `json:"method,omitempty"`
	}
	jsonRetryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	jsonThrottling struct {
		MaxTokens  float64 `json:"maxTokens"`
		TokenRatio float64 `json:"tokenRatio"`
	}
)

// document validates sc, fills in the defaults and returns the JSON
// document and the largest MaxAttempts of its retry policies. field is the
// path of sc in the caller's terms ("ServiceConfig", "Config.ServiceConfig").
func (sc ServiceConfig) document(field string) (jsonServiceConfig, int, error) {
	var doc jsonServiceConfig
	maxAttempts := 0
	if p := sc.LoadBalancingPolicy; p != "" {
		if balancer.Get(p) == nil {
			return doc, 0, fmt.Errorf("grpcclient: %s.LoadBalancingPolicy is %q, want a registered balancer such as %q", field, p, "round_robin")
		}
		doc.LoadBalancingConfig = []map[string]struct{}{{p: {}}}
	}
	seen := map[jsonName]string{}
	for i, mc := range sc.MethodConfig {
		f := fmt.Sprintf("%s.MethodConfig[%d]", field, i)
		jm, attempts, err := mc.document(f, seen)
		if err != nil {
			return doc, 0, err
		}
		maxAttempts = max(maxAttempts, attempts)
		doc.MethodConfig = append(doc.MethodConfig, jm)
	}
	if t := sc.RetryThrottling; t != nil {
		jt, err := t.document(field + ".RetryThrottling")
		if err != nil {
			return doc, 0, err
		}
		doc.RetryThrottling = &jt
	}
	return doc, maxAttempts, nil
}

func (mc MethodConfig) document(field string, seen map[jsonName]string) (jsonMethodConfig, int, error) {
	var jm jsonMethodConfig
	if len(mc.Name) == 0 {
		return jm, 0, fmt.Errorf("grpcclient: %s.Name is empty, want at least one Name (the zero Name means every method)", field)
	}
	for j, n := range mc.Name {
		nf := fmt.Sprintf("%s.Name[%d]", field, j)
		switch {
		case n.Service == "" && n.Method != "":
			return jm, 0, fmt.Errorf("grpcclient: %s has Method %q but no Service", nf, n.Method)
		case strings.ContainsAny(n.Service, "/ ") || strings.HasPrefix(n.Service, "."):
			return jm, 0, fmt.Errorf("grpcclient: %s.Service is %q, want a fully qualified service name such as %q", nf, n.Service, "grpc.testing.TestService")
		case strings.ContainsAny(n.Method, "/. "):
			return jm, 0, fmt.Errorf("grpcclient: %s.Method is %q, want a method name such as %q", nf, n.Method, "UnaryCall")
		}
		jn := jsonName(n)
		if prev, dup := seen[jn]; dup {
			return jm, 0, fmt.Errorf("grpcclient: %s names %s again (first in %s)", nf, n.String(), prev)
		}
		seen[jn] = nf
		jm.Name = append(jm.Name, jn)
	}
	switch {
	case mc.Timeout < 0:
		return jm, 0, fmt.Errorf("grpcclient: %s.Timeout is %v, want >= 0", field, mc.Timeout)
	case mc.MaxRequestMessageBytes < 0:
		return jm, 0, fmt.Errorf("grpcclient: %s.MaxRequestMessageBytes is %d, want >= 0", field, mc.MaxRequestMessageBytes)
	case mc.MaxResponseMessageBytes < 0:
		return jm, 0, fmt.Errorf("grpcclient: %s.MaxResponseMessageBytes is %d, want >= 0", field, mc.MaxResponseMessageBytes)
	}
	if mc.WaitForReady != nil {
		w := *mc.WaitForReady
		jm.WaitForReady = &w
	}
	if mc.Timeout > 0 {
		jm.Timeout = formatDuration(mc.Timeout)
	}
	jm.MaxRequestMessageBytes, jm.MaxResponseMessageBytes = mc.MaxRequestMessageBytes, mc.MaxResponseMessageBytes
	attempts := 0
	if rp := mc.RetryPolicy; rp != nil {
		jr, err := rp.document(field + ".RetryPolicy")
		if err != nil {
			return jm, 0, err
		}
		jm.RetryPolicy, attempts = &jr, jr.MaxAttempts
	}
	return jm, attempts, nil
}

// String returns "/service/method", "/service/*" or "*".
func (n Name) String() string {
	switch {
	case n.Service == "":
		return "*"
	case n.Method == "":
		return "/" + n.Service + "/*"
	}
	return "/" + n.Service + "/" + n.Method
}

func (rp RetryPolicy) document(field string) (jsonRetryPolicy, error) {
	var jr jsonRetryPolicy
	switch {
	case rp.MaxAttempts < 0 || rp.MaxAttempts == 1:
		return jr, fmt.Errorf("grpcclient: %s.MaxAttempts is %d, want >= 2 (or 0 for %d); a policy of one attempt retries nothing", field, rp.MaxAttempts, defaultRetryAttempts)
	case rp.InitialBackoff < 0:
		return jr, fmt.Errorf("grpcclient: %s.InitialBackoff is %v, want >= 0", field, rp.InitialBackoff)
	case rp.MaxBackoff < 0:
		return jr, fmt.Errorf("grpcclient: %s.MaxBackoff is %v, want >= 0", field, rp.MaxBackoff)
	case math.IsNaN(rp.BackoffMultiplier) || math.IsInf(rp.BackoffMultiplier, 0) || rp.BackoffMultiplier != 0 && rp.BackoffMultiplier < 1:
		return jr, fmt.Errorf("grpcclient: %s.BackoffMultiplier is %v, want a finite number >= 1 (or 0 for %d)", field, rp.BackoffMultiplier, defaultMultiplier)
	}
	initial := cmpDuration(rp.InitialBackoff, defaultInitialBackoff)
	maxBackoff := rp.MaxBackoff
	if maxBackoff == 0 {
		maxBackoff = max(defaultMaxBackoff, initial)
	}
	if maxBackoff < initial {
		return jr, fmt.Errorf("grpcclient: %s.MaxBackoff (%v) is shorter than %s.InitialBackoff (%v)", field, maxBackoff, field, initial)
	}
	jr.MaxAttempts = rp.MaxAttempts
	if jr.MaxAttempts == 0 {
		jr.MaxAttempts = defaultRetryAttempts
	}
	jr.InitialBackoff, jr.MaxBackoff = formatDuration(initial), formatDuration(maxBackoff)
	jr.BackoffMultiplier = rp.BackoffMultiplier
	if jr.BackoffMultiplier == 0 {
		jr.BackoffMultiplier = defaultMultiplier
	}
	codeList := rp.RetryableStatusCodes
	if len(codeList) == 0 {
		codeList = []codes.Code{codes.Unavailable}
	}
	seen := map[codes.Code]bool{}
	for i, c := range codeList {
		name, ok := codeName(c)
		switch {
		case !ok:
			return jr, fmt.Errorf("grpcclient: %s.RetryableStatusCodes[%d] is %d, want a gRPC status code", field, i, uint32(c))
		case c == codes.OK:
			return jr, fmt.Errorf("grpcclient: %s.RetryableStatusCodes[%d] is OK, which cannot be retried", field, i)
		case seen[c]:
			continue
		}
		seen[c] = true
		jr.RetryableStatusCodes = append(jr.RetryableStatusCodes, name)
	}
	return jr, nil
}

func (t RetryThrottling) document(field string) (jsonThrottling, error) {
	switch {
	case math.IsNaN(t.MaxTokens) || t.MaxTokens < 0 || t.MaxTokens > 1000:
		return jsonThrottling{}, fmt.Errorf("grpcclient: %s.MaxTokens is %v, want within (0, 1000] (or 0 for %d)", field, t.MaxTokens, defaultMaxTokens)
	case math.IsNaN(t.TokenRatio) || math.IsInf(t.TokenRatio, 0) || t.TokenRatio < 0:
		return jsonThrottling{}, fmt.Errorf("grpcclient: %s.TokenRatio is %v, want a finite number > 0 (or 0 for %v)", field, t.TokenRatio, defaultTokenRatio)
	case t.TokenRatio > 0 && t.TokenRatio < 0.001:
		return jsonThrottling{}, fmt.Errorf("grpcclient: %s.TokenRatio is %v, want >= 0.001: grpc-go reads 3 decimal places, and would read 0", field, t.TokenRatio)
	}
	jt := jsonThrottling{MaxTokens: t.MaxTokens, TokenRatio: t.TokenRatio}
	if jt.MaxTokens == 0 {
		jt.MaxTokens = defaultMaxTokens
	}
	if jt.TokenRatio == 0 {
		jt.TokenRatio = defaultTokenRatio
	}
	return jt, nil
}

// formatDuration writes d as a service-config duration: seconds with up to
// nine decimals and an "s", such as "0.1s".
func formatDuration(d time.Duration) string {
	s := strconv.FormatInt(int64(d/time.Second), 10)
	if ns := int64(d % time.Second); ns != 0 {
		frac := strconv.FormatInt(ns+int64(time.Second), 10)[1:] // nine digits, leading zeros kept
		s += "." + strings.TrimRight(frac, "0")
	}
	return s + "s"
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// codeName returns the name grpc-go reads for c in retryableStatusCodes.
func codeName(c codes.Code) (string, bool) {
	if c > codes.Unauthenticated {
		return "", false
	}
	return [...]string{
		codes.OK:                 "OK",
		codes.Canceled:           "CANCELLED",
		codes.Unknown:            "UNKNOWN",
		codes.InvalidArgument:    "INVALID_ARGUMENT",
		codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
		codes.NotFound:           "NOT_FOUND",
		codes.AlreadyExists:      "ALREADY_EXISTS",
		codes.PermissionDenied:   "PERMISSION_DENIED",
		codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION",
		codes.Aborted:            "ABORTED",
		codes.OutOfRange:         "OUT_OF_RANGE",
		codes.Unimplemented:      "UNIMPLEMENTED",
		codes.Internal:           "INTERNAL",
		codes.Unavailable:        "UNAVAILABLE",
		codes.DataLoss:           "DATA_LOSS",
		codes.Unauthenticated:    "UNAUTHENTICATED",
	}[c], true
}
