package seen

import (
	"errors"
	"fmt"
)

// ErrJobExists is returned by the Enqueue methods when a job with the id exists (queued,
// deferred or running): ARQ's de-duplication by id. Nothing was written.
var ErrJobExists = errors.New("seen: a job with this id already exists")

// ValidationError is a value refused before anything was sent to the store.
type ValidationError struct {
	// Field names what was wrong: "job_id", "seq", "function", "traceparent", ...; empty
	// when the value as a whole is (an update that is not a JSON object, a batch too large).
	Field string
	// Index is the position of the update in a batch, or -1.
	Index  int
	Reason string
}

func (e *ValidationError) Error() string {
	where := e.Field
	if e.Index >= 0 {
		where = fmt.Sprintf("updates[%d]", e.Index)
		if e.Field != "" {
			where += "." + e.Field
		}
	}
	if where == "" {
		return "seen: invalid value: " + e.Reason
	}
	return "seen: invalid " + where + ": " + e.Reason
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Index: -1, Reason: fmt.Sprintf(format, args...)}
}
