package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/fallback"
	"github.com/bulwarkrpc/bulwark/fanout"
	"github.com/bulwarkrpc/bulwark/hedge"
	"github.com/bulwarkrpc/bulwark/retry"
	"github.com/bulwarkrpc/bulwark/timeout"
)

type Profile struct {
	Name   string
	Orders []int
	Recs   []string
}

func ExampleNew() {
	// One budget for every extra attempt of the client: retries and the
	// branches First races beyond the first.
	budget, _ := retry.NewBudget(retry.BudgetConfig{})
	fan, err := fanout.New(fanout.Config{
		MaxConcurrent: 8,
		Hedge:         hedge.Config{Delay: 50 * time.Millisecond, Budget: budget},
		Name:          "profile",
	})
	fmt.Println(fan != nil, err)
	_, err = fanout.New(fanout.Config{MaxConcurrent: -1})
	fmt.Println(err)
	// Output:
	// true <nil>
	// fanout: Config.MaxConcurrent is -1, want >= 0
}

// Three services of three types; one is down. Its Result holds its error,
// the others their answers.
func ExampleAdd() {
	fan, _ := fanout.New(fanout.Config{})
	to, _ := timeout.New(timeout.Config{Total: time.Second})
	stack, _ := bulwark.New(bulwark.Config{Timeout: to})

	g := fan.Gather()
	name := fanout.Add(g, "users", stack, func(ctx context.Context) (string, error) { return "ada", nil })
	orders := fanout.Add(g, "orders", stack, func(ctx context.Context) ([]int, error) { return []int{1, 2}, nil })
	recs := fanout.Add(g, "recs", stack, func(ctx context.Context) ([]string, error) {
		return nil, errors.New("503 Service Unavailable")
	})
	err := g.Run(context.Background())
	fmt.Println(err)

	p := Profile{Name: name.Or("?"), Orders: orders.Or(nil), Recs: recs.Or([]string{})}
	fmt.Printf("%+v\n", p)
	fmt.Println(recs.Status())
	// Output:
	// fanout: 1 of 3 branches gave no answer: branch 2 ("recs"): 503 Service Unavailable
	// {Name:ada Orders:[1 2] Recs:[]}
	// failure
}

// A branch with a default: its Pipeline's fallback answers for it.
func ExampleAddPipeline() {
	fan, _ := fanout.New(fanout.Config{})
	stack, _ := bulwark.New(bulwark.Config{})
	def, _ := fallback.NewValue(fallback.ValueConfig[[]string]{Value: []string{"bestsellers"}})
	recsPipe, _ := bulwark.NewPipeline(bulwark.PipelineConfig[[]string]{Stack: stack, Key: "recs", Fallback: def})

	g := fan.Gather()
	name := fanout.Add(g, "users", stack, func(ctx context.Context) (string, error) { return "ada", nil })
	recs := fanout.AddPipeline(g, "recs", recsPipe, "recs:ada", func(ctx context.Context) ([]string, error) {
		return nil, errors.New("connection refused")
	})
	fmt.Println(g.Run(context.Background()))
	v, _ := name.Get()
	r, _ := recs.Get()
	fmt.Println(v, r, recs.Status(), recs.Note().Source)
	// Output:
	// <nil>
	// ada [bestsellers] fallback value
}

// Two of three replicas must agree to answer.
func ExampleQuorum() {
	fan, _ := fanout.New(fanout.Config{})
	replica := func(v int, err error) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { return v, err }
	}
	answers, err := fanout.Quorum(context.Background(), fan, 2,
		fanout.Branch[int]{Name: "a", Call: replica(7, nil)},
		fanout.Branch[int]{Name: "b", Call: replica(0, errors.New("down"))},
		fanout.Branch[int]{Name: "c", Call: replica(7, nil)})
	fmt.Println(len(answers), answers[0].Value, err)

	_, err = fanout.Quorum(context.Background(), fan, 4,
		fanout.Branch[int]{Name: "a", Call: replica(7, nil)})
	fmt.Println(err)
	// Output:
	// 2 7 <nil>
	// fanout: Quorum needs k within [1, 1] (the number of branches), got k = 4
}

// The first mirror does not answer in time: the second starts after the
// stagger delay, wins, and the first is cancelled.
func ExampleFirst() {
	fan, _ := fanout.New(fanout.Config{Hedge: hedge.Config{Delay: 10 * time.Millisecond}})
	ans, err := fanout.First(context.Background(), fan,
		fanout.Branch[string]{Name: "mirror-1", Call: func(ctx context.Context) (string, error) {
			<-ctx.Done() // stuck until the race is decided
			return "", ctx.Err()
		}},
		fanout.Branch[string]{Name: "mirror-2", Call: func(ctx context.Context) (string, error) {
			return "payload", nil
		}})
	fmt.Println(ans.Index, ans.Value, err)
	// Output:
	// 1 payload <nil>
}
