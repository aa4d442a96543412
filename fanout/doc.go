// Package fanout calls several services at once and keeps what each of
// them answered, so that one failing service does not fail the whole
// request: its part is answered with a default or a cached value, or left
// out, and the rest is served.
//
// A [Fanout] (built once, with [New]) runs three kinds of call:
//
//   - [Gather]: every branch runs, each with its own type and its own
//     policies (its own bulwark.Stack, or a bulwark.Pipeline with a
//     fallback), and the caller gets every branch's answer or error. A
//     branch that fails never cancels the others; Config.MaxConcurrent
//     bounds how many run at once; a branch still running when the
//     caller's context ends is abandoned, not waited for.
//   - [Quorum]: n interchangeable branches; success as soon as k of them
//     succeed (the rest are cancelled), failure as soon as k is out of
//     reach.
//   - [First]: a race of interchangeable branches with staggered starts,
//     run by the one hedging primitive, hedge.Hedge (attempt n runs branch
//     n), drawing on the retry budget the retries share.
//
// Gather keeps the branches' types: [Add] is generic, and returns a typed
// [Result] to read once [Gather.Run] has returned.
//
//	g := fan.Gather()
//	user := fanout.Add(g, "users", usersStack, func(ctx context.Context) (User, error) {
//		return fetchUser(ctx, id)
//	})
//	recs := fanout.AddPipeline(g, "recs", recsWithDefault, id, func(ctx context.Context) ([]Item, error) {
//		return fetchRecs(ctx, id)
//	})
//	err := g.Run(ctx) // nil, or a *PartialError naming the branches without an answer
//	u, uerr := user.Get()
//	items := recs.Or(nil)
//
// Fan-out is a call wrapper around whole calls, each of which runs through
// its own policies in the composition order:
//
//	fanout → per branch: fallback → total deadline → retry/hedge → balancer pick → breaker → bulkhead → attempt deadline → transport
//
// The package knows no transport: a branch is any function of a context.
//
// Telemetry: one span per branch, under the caller's span and only when
// that span is recording (so an untraced call pays nothing for it), and
// the counters bulwark.fanout.branches (by op and outcome: success,
// failure, fallback, abandoned) and bulwark.fanout.partial (calls that
// answered with part of their branches missing or replaced). First's
// hedges also report hedge's bulwark.hedge.* metrics.
package fanout
