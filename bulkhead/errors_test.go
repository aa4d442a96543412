package bulkhead_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bulwarkrpc/bulwark"
	"github.com/bulwarkrpc/bulwark/bulkhead"
)

// rejections returns one real rejection of each Reason, from Bulkheads
// named "api" with Limit 1.
func rejections(t *testing.T) map[bulkhead.Reason]error {
	t.Helper()
	got := map[bulkhead.Reason]error{}
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		full := func(cfg bulkhead.Config) *bulkhead.Bulkhead {
			cfg.Name, cfg.Limit = "api", 1
			b, err := bulkhead.New(cfg)
			if err != nil {
				t.Fatalf("New: got %v, want nil", err)
			}
			p, err := b.Enter(ctx, "")
			if err != nil {
				t.Fatalf("Enter: got %v, want nil", err)
			}
			t.Cleanup(func() { p.Done(bulwark.Success) })
			return b
		}

		_, got[bulkhead.ReasonNoQueue] = full(bulkhead.Config{}).Enter(ctx, "")

		b := full(bulkhead.Config{MaxQueue: 1})
		waiting, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			_, err := b.Enter(waiting, "")
			done <- err
		}()
		synctest.Wait()
		_, got[bulkhead.ReasonQueueFull] = b.Enter(ctx, "")
		cancel()
		<-done

		_, got[bulkhead.ReasonMaxWait] = full(bulkhead.Config{MaxQueue: 1, MaxWait: time.Second}).Enter(ctx, "")
	})
	return got
}

func TestFullError(t *testing.T) {
	tests := []struct {
		reason bulkhead.Reason
		text   string
		name   string
	}{
		{bulkhead.ReasonNoQueue, `bulkhead: full: key "api", limit 1, no queue`, "no_queue"},
		{bulkhead.ReasonQueueFull, `bulkhead: full: key "api", limit 1, queue full`, "queue_full"},
		{bulkhead.ReasonMaxWait, `bulkhead: full: key "api", limit 1, waited 1s in queue`, "max_wait"},
	}
	errs := rejections(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errs[tt.reason]
			var fe *bulkhead.FullError
			if !errors.As(err, &fe) {
				t.Fatalf("errors.As(%v, *FullError): got false, want true", err)
			}
			if fe.Key != "api" || fe.Limit != 1 || fe.Reason != tt.reason {
				t.Errorf("got Key %q Limit %d Reason %v, want \"api\" 1 %v", fe.Key, fe.Limit, fe.Reason, tt.reason)
			}
			if got := err.Error(); got != tt.text {
				t.Errorf("Error: got %q, want %q", got, tt.text)
			}
			if got := tt.reason.String(); got != tt.name {
				t.Errorf("Reason.String: got %q, want %q", got, tt.name)
			}
			for _, target := range []error{bulkhead.ErrFull, bulwark.ErrRejected} {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v): got false, want true", target)
				}
			}
			// The MaxWait is our own queueing policy, not a deadline.
			for _, target := range []error{context.DeadlineExceeded, context.Canceled} {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(err, %v): got true, want false", target)
				}
			}
			if errors.Unwrap(err) != nil {
				t.Errorf("errors.Unwrap: got %v, want nil", errors.Unwrap(err))
			}
			if got := bulwark.ClassifyError(context.Background(), err); got != bulwark.Ignored {
				t.Errorf("ClassifyError: got %v, want %v", got, bulwark.Ignored)
			}
		})
	}
}

func TestErrFull(t *testing.T) {
	if !errors.Is(bulkhead.ErrFull, bulwark.ErrRejected) {
		t.Errorf("errors.Is(ErrFull, ErrRejected): got false, want true")
	}
	if got := bulwark.ClassifyError(context.Background(), bulkhead.ErrFull); got != bulwark.Ignored {
		t.Errorf("ClassifyError(ErrFull): got %v, want %v", got, bulwark.Ignored)
	}
	if got, want := bulkhead.Reason(9).String(), "reason(9)"; got != want {
		t.Errorf("Reason(9).String(): got %q, want %q", got, want)
	}
}

func TestFullErrorNoName(t *testing.T) {
	b, err := bulkhead.New(bulkhead.Config{Limit: 1})
	if err != nil {
		t.Fatalf("New: got %v, want nil", err)
	}
	p, err := b.Enter(t.Context(), "")
	if err != nil {
		t.Fatalf("Enter: got %v, want nil", err)
	}
	defer p.Done(bulwark.Success)
	_, err = b.Enter(t.Context(), "ignored")
	if got, want := err.Error(), "bulkhead: full: limit 1, no queue"; got != want {
		t.Errorf("Error: got %q, want %q", got, want)
	}
}
