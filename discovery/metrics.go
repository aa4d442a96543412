package discovery

import (
	"context"
	"fmt"

	"github.com/bulwarkrpc/bulwark"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const scope = "github.com/bulwarkrpc/bulwark/discovery"

// Attribute keys.
const (
	keyAttr      = "bulwark.key"
	instanceAttr = "bulwark.discovery.instance"
	stateAttr    = "bulwark.discovery.state"
	reasonAttr   = "bulwark.discovery.reason"
	outcomeAttr  = "bulwark.outcome"
)

// Reasons of bulwark.discovery.ejections.
const (
	reasonConsecutive  = "consecutive_failures"
	reasonSuccessRate  = "success_rate"
	reasonFailureRatio = "failure_ratio"
)

// instruments are a Balancer's, with their attribute sets built once.
type instruments struct {
	meter        metric.Meter
	picks        metric.Int64ObservableCounter
	noInstance   metric.Int64ObservableCounter
	instances    metric.Int64ObservableGauge
	ejected      metric.Int64ObservableGauge
	panic        metric.Int64ObservableGauge
	ejections    metric.Int64Counter
	registration metric.Registration

	key         attribute.KeyValue
	keyOpt      metric.ObserveOption
	stateOpts   [3]metric.ObserveOption // eligible, incompatible, invalid
	outcomes    [3]attribute.KeyValue   // bulwark.outcome, by bulwark.Outcome
	outcomeOpts [3]metric.ObserveOption // by bulwark.Outcome
	reasons     map[string][]metric.AddOption
}

func (in *instruments) create(mp metric.MeterProvider, service string) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	in.meter = mp.Meter(scope)
	var errs [6]error
	in.picks, errs[0] = in.meter.Int64ObservableCounter("bulwark.discovery.picks",
		metric.WithDescription("Attempts a balancer sent to an instance of the service, counted when they end, by bulwark.outcome."),
		metric.WithUnit("{attempt}"))
	in.noInstance, errs[1] = in.meter.Int64ObservableCounter("bulwark.discovery.no_instance",
		metric.WithDescription("Attempts a balancer refused for want of an instance it may pick."),
		metric.WithUnit("{attempt}"))
	in.instances, errs[2] = in.meter.Int64ObservableGauge("bulwark.discovery.instances",
		metric.WithDescription("Instances of the service's last set, by state: eligible, incompatible (API version), invalid."),
		metric.WithUnit("{instance}"))
	in.ejected, errs[3] = in.meter.Int64ObservableGauge("bulwark.discovery.ejected",
		metric.WithDescription("Eligible instances ejected as outliers now."),
		metric.WithUnit("{instance}"))
	in.panic, errs[4] = in.meter.Int64ObservableGauge("bulwark.discovery.panic",
		metric.WithDescription("1 while too few instances are healthy and the balancer picks among all, ejected or not; 0 otherwise."),
		metric.WithUnit("1"))
	in.ejections, errs[5] = in.meter.Int64Counter("bulwark.discovery.ejections",
		metric.WithDescription("Ejections of instances as outliers, by reason."),
		metric.WithUnit("{ejection}"))
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("discovery: creating instruments: %w", err)
		}
	}
	in.key = attribute.String(keyAttr, service)
	in.keyOpt = metric.WithAttributeSet(attribute.NewSet(in.key))
	for _, o := range [...]bulwark.Outcome{bulwark.Success, bulwark.Failure, bulwark.Ignored} {
		in.outcomes[o] = attribute.String(outcomeAttr, o.String())
		in.outcomeOpts[o] = metric.WithAttributeSet(attribute.NewSet(in.key, in.outcomes[o]))
	}
	for i, state := range [...]string{stateEligible, stateIncompatible, stateInvalid} {
		in.stateOpts[i] = metric.WithAttributeSet(attribute.NewSet(in.key, attribute.String(stateAttr, state)))
	}
	in.reasons = map[string][]metric.AddOption{}
	for _, r := range [...]string{reasonConsecutive, reasonSuccessRate, reasonFailureRatio} {
		in.reasons[r] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(in.key, attribute.String(reasonAttr, r)))}
	}
	return nil
}

// instanceOpts returns the attribute sets of the picks of the instance at
// addr, by outcome.
func (in *instruments) instanceOpts(addr string, perInstance bool) *[3]metric.ObserveOption {
	if !perInstance {
		return &in.outcomeOpts
	}
	opts := new([3]metric.ObserveOption)
	for o, kv := range in.outcomes {
		opts[o] = metric.WithAttributeSet(attribute.NewSet(in.key, attribute.String(instanceAttr, addr), kv))
	}
	return opts
}

func (in *instruments) register(b *Balancer) error {
	var err error
	in.registration, err = in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		b.observe(o)
		return nil
	}, in.picks, in.noInstance, in.instances, in.ejected, in.panic)
	if err != nil {
		return fmt.Errorf("discovery: registering the balancer's callback: %w", err)
	}
	return nil
}

func (in *instruments) unregister() error {
	if in.registration == nil {
		return nil
	}
	return in.registration.Unregister()
}

// ejectedOnce counts one ejection.
func (in *instruments) ejectedOnce(reason string) {
	in.ejections.Add(context.Background(), 1, in.reasons[reason]...)
}
