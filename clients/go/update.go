package seen

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Status of a download.
type Status string

// The statuses a download can have; Completed, Failed and Cancelled are final.
const (
	Queued      Status = "queued"
	Downloading Status = "downloading"
	Paused      Status = "paused"
	Completed   Status = "completed"
	Failed      Status = "failed"
	Cancelled   Status = "cancelled"
)

const (
	// MaxInt is the largest integer of a payload (2^53-1: exact in every producer language
	// and in both Lua versions).
	MaxInt = 1<<53 - 1
	// MaxErrorChars is the longest error text of an update, in characters.
	MaxErrorChars = 2000
	// MaxBatch is the most updates one update_progress_batch job carries.
	MaxBatch = 10000
)

// Update is one progress report of a download: the update_progress payload
// (docs/wire-format.md section 4). Seq orders a download's updates: higher wins, equal is a
// duplicate. The JSON form has every field in this order, nulls included, as every
// producer writes it.
type Update struct {
	JobID      string `json:"job_id"`
	UserID     string `json:"user_id"`
	Status     Status `json:"status"`
	Seq        int64  `json:"seq"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"` // 0 = unknown
	// EmittedAtMs is the producer's clock (ms since the epoch) when BytesDone was measured;
	// nil: the worker's clock at apply time.
	EmittedAtMs *int64 `json:"emitted_at_ms"`
	// Error is the reason of a failure (at most 2,000 characters), or nil.
	Error *string `json:"error"`
}

// Ptr returns a pointer to v, for the optional fields: EmittedAtMs: seen.Ptr(ms).
func Ptr[T any](v T) *T { return &v }

func validStatus(s Status) bool {
	switch s {
	case Queued, Downloading, Paused, Completed, Failed, Cancelled:
		return true
	}
	return false
}

func checkCount(field string, v int64) error {
	if v < 0 || v > MaxInt {
		return invalid(field, "must be an integer in [0, %d], got %d", int64(MaxInt), v)
	}
	return nil
}

// Check applies the worker's rules to u; a refused update names the field.
func (u Update) Check() error {
	if err := CheckDownloadID("job_id", u.JobID); err != nil {
		return err
	}
	if err := CheckDownloadID("user_id", u.UserID); err != nil {
		return err
	}
	if !validStatus(u.Status) {
		return invalid("status", "%q is not one of queued, downloading, paused, completed, "+
			"failed, cancelled", string(u.Status))
	}
	for _, f := range []struct {
		name  string
		value int64
	}{{"seq", u.Seq}, {"bytes_done", u.BytesDone}, {"bytes_total", u.BytesTotal}} {
		if err := checkCount(f.name, f.value); err != nil {
			return err
		}
	}
	if u.EmittedAtMs != nil {
		if err := checkCount("emitted_at_ms", *u.EmittedAtMs); err != nil {
			return err
		}
	}
	if u.Error != nil {
		if !utf8.ValidString(*u.Error) {
			return invalid("error", "is not valid UTF-8")
		}
		if n := utf8.RuneCountInString(*u.Error); n > MaxErrorChars {
			return invalid("error", "is %d characters, at most %d", n, MaxErrorChars)
		}
	}
	return nil
}

var (
	updateFields = []string{"job_id", "user_id", "status", "seq", "bytes_done", "bytes_total",
		"emitted_at_ms", "error"}
	integerLiteral = regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)$`)
)

// ParseUpdate reads an update from JSON text with the worker's strictness: a JSON object,
// no unknown field, integers written as integers (not 1.0, "1" or true), then Check.
func ParseUpdate(data []byte) (Update, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return Update{}, invalid("", "an update must be a JSON object")
	}
	unknown := make([]string, 0)
	for name := range fields {
		if !containsString(updateFields, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Update{}, invalid(unknown[0], "unknown field (a typo must not be ignored)")
	}
	var u Update
	var err error
	if u.JobID, err = requiredString(fields, "job_id"); err != nil {
		return Update{}, err
	}
	if u.UserID, err = requiredString(fields, "user_id"); err != nil {
		return Update{}, err
	}
	status, err := requiredString(fields, "status")
	if err != nil {
		return Update{}, err
	}
	u.Status = Status(status)
	seq, err := integerField(fields, "seq", true, false)
	if err != nil {
		return Update{}, err
	}
	u.Seq = *seq
	for _, f := range []struct {
		name string
		dest *int64
	}{{"bytes_done", &u.BytesDone}, {"bytes_total", &u.BytesTotal}} {
		v, err := integerField(fields, f.name, false, false)
		if err != nil {
			return Update{}, err
		}
		if v != nil {
			*f.dest = *v
		}
	}
	if u.EmittedAtMs, err = integerField(fields, "emitted_at_ms", false, true); err != nil {
		return Update{}, err
	}
	if raw, ok := fields["error"]; ok && !isNull(raw) {
		var text string
		if json.Unmarshal(raw, &text) != nil {
			return Update{}, invalid("error", "must be a string or null")
		}
		u.Error = &text
	}
	return u, u.Check()
}

func containsString(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func requiredString(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", invalid(name, "is required")
	}
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", invalid(name, "must be a string")
	}
	return s, nil
}

// integerField reads a JSON integer literal; nil when absent (or null where allowed).
func integerField(fields map[string]json.RawMessage, name string, required, nullable bool,
) (*int64, error) {
	raw, ok := fields[name]
	if !ok {
		if required {
			return nil, invalid(name, "is required")
		}
		return nil, nil
	}
	if nullable && isNull(raw) {
		return nil, nil
	}
	text := string(bytes.TrimSpace(raw))
	if !integerLiteral.MatchString(text) {
		return nil, invalid(name, "must be an integer in [0, %d], got %.40s", int64(MaxInt), text)
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil || v < 0 || v > MaxInt {
		return nil, invalid(name, "must be an integer in [0, %d], got %.40s", int64(MaxInt), text)
	}
	return &v, nil
}

// putArgs is the update as the Lua scripts take it: job, user, seq, status, done, total,
// emitted ms (0 = unknown), error ("" = none).
func (u Update) putArgs() []string {
	emitted, errText := int64(0), ""
	if u.EmittedAtMs != nil {
		emitted = *u.EmittedAtMs
	}
	if u.Error != nil {
		errText = *u.Error
	}
	return []string{u.JobID, u.UserID, strconv.FormatInt(u.Seq, 10), string(u.Status),
		strconv.FormatInt(u.BytesDone, 10), strconv.FormatInt(u.BytesTotal, 10),
		strconv.FormatInt(emitted, 10), errText}
}
