package seen

import (
	"regexp"
	"strings"
)

// TraceContext is the W3C trace context a job carries to the worker (record field "tc"),
// so the worker's spans join the producer's trace. The zero value attaches none.
type TraceContext struct {
	// Traceparent: "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", version 00,
	// lower-case hex, neither id all zeros.
	Traceparent string `json:"traceparent"`
	// Tracestate (optional, needs a Traceparent): at most 512 characters of at most 32
	// comma-separated key=value members.
	Tracestate string `json:"tracestate,omitempty"`
}

const (
	maxTracestateChars   = 512
	maxTracestateMembers = 32
)

var (
	traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)
	tracestateKey = regexp.MustCompile(
		`^(?:[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$`)
	tracestateValue = regexp.MustCompile(`^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$`)
)

// Empty tells whether no trace context is given.
func (t TraceContext) Empty() bool { return t.Traceparent == "" && t.Tracestate == "" }

// Check applies the W3C rules; a refused context names "traceparent" or "tracestate".
func (t TraceContext) Check() error {
	if t.Traceparent == "" {
		if t.Tracestate != "" {
			return invalid("tracestate", "a tracestate needs a traceparent")
		}
		return nil
	}
	m := traceparentRE.FindStringSubmatch(t.Traceparent)
	if m == nil {
		return invalid("traceparent", "%.80q is not 00-<32 hex>-<16 hex>-<2 hex> (lower-case hex)",
			t.Traceparent)
	}
	if strings.Trim(m[1], "0") == "" || strings.Trim(m[2], "0") == "" {
		return invalid("traceparent", "%q has an all-zero trace or parent id", t.Traceparent)
	}
	if t.Tracestate == "" {
		return nil
	}
	if len(t.Tracestate) > maxTracestateChars {
		return invalid("tracestate", "is longer than %d characters", maxTracestateChars)
	}
	members := 0
	for _, member := range strings.Split(t.Tracestate, ",") {
		member = strings.Trim(member, " \t")
		if member == "" {
			continue
		}
		members++
		key, value, found := strings.Cut(member, "=")
		if !found || !tracestateKey.MatchString(key) || !tracestateValue.MatchString(value) {
			return invalid("tracestate", "member %.80q is not key=value", member)
		}
	}
	if members > maxTracestateMembers {
		return invalid("tracestate", "has more than %d members", maxTracestateMembers)
	}
	return nil
}
