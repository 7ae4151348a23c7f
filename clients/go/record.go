package seen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxFunctionChars is the longest function name of a job record.
const MaxFunctionChars = 256

// The functions of the progress pipeline.
const (
	UpdateFunction = "update_progress"
	BatchFunction  = "update_progress_batch"
	DrainFunction  = "apply_pending_progress"
)

type jobRecord struct {
	T  *int64        `json:"t"`
	F  string        `json:"f"`
	A  []any         `json:"a"`
	K  struct{}      `json:"k"`
	Et int64         `json:"et"`
	Tc *TraceContext `json:"tc,omitempty"`
}

// Record is the job record a producer writes under the job key (docs/wire-format.md
// section 2): {"t":null,"f":function,"a":args,"k":{},"et":enqueueMs} plus "tc" when trace
// has a traceparent. The bytes are what the Python producer writes for the same job:
// compact JSON, fields in this order, every character outside printable ASCII escaped.
func Record(function string, args []any, enqueueMs int64, trace TraceContext) ([]byte, error) {
	if n := utf8.RuneCountInString(function); n < 1 || n > MaxFunctionChars {
		return nil, invalid("function", "must be 1-%d characters, got %d", MaxFunctionChars, n)
	}
	if err := trace.Check(); err != nil {
		return nil, err
	}
	if args == nil {
		args = []any{}
	}
	record := jobRecord{F: function, A: args, Et: enqueueMs}
	if trace.Traceparent != "" {
		record.Tc = &trace
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(record); err != nil {
		return nil, &ValidationError{Field: "args", Index: -1, Reason: err.Error()}
	}
	return asciiJSON(bytes.TrimRight(out.Bytes(), "\n")), nil
}

// asciiJSON rewrites encoding/json's output the way Python's json.dumps writes it
// (ensure_ascii): every character outside printable ASCII inside a string as \uXXXX
// (lower-case, surrogate pairs above U+FFFF), and \b and \f in their short form.
func asciiJSON(in []byte) []byte {
	out := make([]byte, 0, len(in)+len(in)/8)
	inString := false
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case !inString:
			inString = c == '"'
			out = append(out, c)
			i++
		case c == '\\':
			if in[i+1] == 'u' {
				switch string(in[i+2 : i+6]) {
				case "0008":
					out = append(out, '\\', 'b')
				case "000c":
					out = append(out, '\\', 'f')
				default:
					out = append(out, in[i:i+6]...)
				}
				i += 6
				continue
			}
			out = append(out, c, in[i+1])
			i += 2
		case c == '"':
			inString = false
			out = append(out, c)
			i++
		case c < utf8.RuneSelf && c != 0x7f:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r >= 0x10000 {
				hi, lo := utf16.EncodeRune(r)
				out = appendEscape(appendEscape(out, hi), lo)
			} else {
				out = appendEscape(out, r)
			}
			i += size
		}
	}
	return out
}

func appendEscape(out []byte, r rune) []byte {
	return append(out, fmt.Sprintf("\\u%04x", r)...)
}
