package fanout

import (
	"errors"
	"strconv"
	"strings"
)

var (
	// ErrInvalid matches (with errors.Is) every error by which a fan-out
	// call refused its input before starting any branch: no branches, a
	// nil function, k out of range.
	ErrInvalid = errors.New("fanout: invalid input")
	// ErrAbandoned matches the error of a branch the fan-out stopped
	// waiting for (StatusAbandoned). The error also matches the reason:
	// the caller context's error.
	ErrAbandoned = errors.New("fanout: branch abandoned")
	// ErrPartial matches the *PartialError of a Gather some of whose
	// branches gave no answer.
	ErrPartial = errors.New("fanout: some branches gave no answer")
	// ErrNoQuorum matches the *QuorumError of a Quorum or a First that got
	// fewer successes than it needed.
	ErrNoQuorum = errors.New("fanout: too few branches succeeded")
	// ErrPending is what a Result reports before its Gather's Run has
	// returned.
	ErrPending = errors.New("fanout: Gather.Run has not returned")
)

// invalid returns an error with the given text that matches ErrInvalid.
func invalid(text string) error { return &invalidError{text} }

type invalidError struct{ text string }

func (e *invalidError) Error() string        { return e.text }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// abandoned returns the error of a branch abandoned because of cause.
func abandoned(cause error) error { return &abandonedError{cause} }

type abandonedError struct{ cause error }

func (e *abandonedError) Error() string        { return "fanout: branch abandoned: " + e.cause.Error() }
func (e *abandonedError) Is(target error) bool { return target == ErrAbandoned }
func (e *abandonedError) Unwrap() error        { return e.cause }

// BranchError is how one branch of a fan-out call failed: the branch's own
// error, unchanged, with the branch it came from.
type BranchError struct {
	// Index is the branch's position: the order of Add, or in the
	// branches given to Quorum or First.
	Index int
	// Name is the branch's name.
	Name string
	// Status is StatusFailure or StatusAbandoned.
	Status Status
	// Err is the branch's error; for an abandoned branch it matches
	// ErrAbandoned and the caller context's error.
	Err error
}

func (e *BranchError) Error() string {
	return "branch " + strconv.Itoa(e.Index) + " (" + strconv.Quote(e.Name) + "): " + e.Err.Error()
}

// Unwrap returns the branch's error.
func (e *BranchError) Unwrap() error { return e.Err }

// PartialError is the error of a Gather some of whose branches gave no
// answer (failed with no fallback, or were abandoned). The others
// answered: read them from their Results. It matches ErrPartial, and
// every error its branches' errors match.
type PartialError struct {
	// Branches are the branches that gave no answer, in Index order.
	Branches []*BranchError
	// N is the number of branches the Gather ran.
	N int
}

func (e *PartialError) Error() string {
	return joined("fanout: "+strconv.Itoa(len(e.Branches))+" of "+strconv.Itoa(e.N)+" branches gave no answer", e.Branches)
}

// Is reports whether target is ErrPartial.
func (e *PartialError) Is(target error) bool { return target == ErrPartial }

// Unwrap returns the branches' errors.
func (e *PartialError) Unwrap() []error { return unwrap(e.Branches) }

// QuorumError is the error of a Quorum, or of a First (a quorum of one),
// that got fewer successes than it needed. It matches ErrNoQuorum, and
// every error its branches' errors match (the caller context's error when
// the caller gave up waiting).
type QuorumError struct {
	// K is how many successes were needed; N is how many branches there
	// were; Succeeded is how many succeeded.
	K, N, Succeeded int
	// Branches are the branches that failed or were abandoned, in Index
	// order. Branches that never started are not listed.
	Branches []*BranchError
}

func (e *QuorumError) Error() string {
	return joined("fanout: "+strconv.Itoa(e.Succeeded)+" of "+strconv.Itoa(e.N)+" branches succeeded, want "+strconv.Itoa(e.K), e.Branches)
}

// Is reports whether target is ErrNoQuorum.
func (e *QuorumError) Is(target error) bool { return target == ErrNoQuorum }

// Unwrap returns the branches' errors.
func (e *QuorumError) Unwrap() []error { return unwrap(e.Branches) }

func joined(head string, bs []*BranchError) string {
	var b strings.Builder
	b.WriteString(head)
	for i, e := range bs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func unwrap(bs []*BranchError) []error {
	errs := make([]error, len(bs))
	for i, e := range bs {
		errs[i] = e
	}
	return errs
}
