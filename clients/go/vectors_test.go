package seen_test

// The shared conformance vectors (tests/conformance/vectors/*.json of the repository), the
// same files the Python and Node producers' tests read.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	seen "seen-worker/clients/go"
)

func vectorsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SEEN_CONFORMANCE_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "tests", "conformance", "vectors")
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the conformance vectors are missing: %v", err)
		}
		t.Skipf("conformance vectors not found (%v): run inside the repository", err)
	}
	return dir
}

func load(t *testing.T, name string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vectorsDir(t), name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
}

// refusedFor checks err is a *seen.ValidationError naming field ("" = any field).
func refusedFor(t *testing.T, err error, field string) {
	t.Helper()
	var v *seen.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("want a *ValidationError for %q, got %v", field, err)
	}
	if field != "" && v.Field != field {
		t.Fatalf("want the error to name %q, got %q (%v)", field, v.Field, err)
	}
}

func TestShardFunction(t *testing.T) {
	var file struct {
		Vectors []struct {
			ID     string `json:"id"`
			Shards int    `json:"shards"`
			Shard  int    `json:"shard"`
		}
	}
	load(t, "shards", &file)
	for _, v := range file.Vectors {
		if got := seen.ShardOf(v.ID, v.Shards); got != v.Shard {
			t.Errorf("ShardOf(%q, %d) = %d, want %d", v.ID, v.Shards, got, v.Shard)
		}
	}
}

type layoutVector struct {
	Layout string `json:"layout"`
	Name   string `json:"name"`
	Shards int    `json:"shards"`
	ID     string `json:"id"`
	Keys   struct {
		Shard      int    `json:"shard"`
		Queue      string `json:"queue"`
		Abort      string `json:"abort"`
		Job        string `json:"job"`
		InProgress string `json:"in_progress"`
		Retry      string `json:"retry"`
		Result     string `json:"result"`
	} `json:"keys"`
}

func makeLayout(kind, name string, shards int) (seen.Layout, error) {
	if kind == "sharded" {
		return seen.ShardedLayout(name, shards)
	}
	if name == "" { // "" means the default name in Go; the vector means an empty name
		return seen.Layout{}, seen.CheckJobID("queue name", name)
	}
	return seen.ARQLayout(name)
}

func TestQueueKeys(t *testing.T) {
	var file struct {
		Layouts []layoutVector `json:"layouts"`
		Invalid []layoutVector `json:"invalid"`
	}
	load(t, "queue_keys", &file)
	for _, v := range file.Layouts {
		layout, err := makeLayout(v.Layout, v.Name, v.Shards)
		if err != nil {
			t.Fatalf("%s %s: %v", v.Layout, v.Name, err)
		}
		k := layout.Keys(v.ID)
		got := []any{k.Shard, k.Queue, k.Abort, k.Job, k.InProgress, k.Retry, k.Result}
		want := []any{v.Keys.Shard, v.Keys.Queue, v.Keys.Abort, v.Keys.Job, v.Keys.InProgress,
			v.Keys.Retry, v.Keys.Result}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s %s %q: key %d = %v, want %v", v.Layout, v.Name, v.ID, i, got[i], want[i])
			}
		}
	}
	for _, v := range file.Invalid {
		if _, err := makeLayout(v.Layout, v.Name, v.Shards); err == nil {
			t.Errorf("layout %s %q %d accepted", v.Layout, v.Name, v.Shards)
		}
	}
}

func TestJobIDs(t *testing.T) {
	var file struct {
		Valid   []string `json:"valid"`
		Invalid []struct {
			ID string `json:"id"`
		} `json:"invalid"`
	}
	load(t, "job_ids", &file)
	for _, id := range file.Valid {
		if err := seen.CheckJobID("job_id", id); err != nil {
			t.Errorf("%q refused: %v", id, err)
		}
	}
	for _, v := range file.Invalid {
		refusedFor(t, seen.CheckJobID("job_id", v.ID), "job_id")
	}
}

type updateFile struct {
	EnqueueMs int64 `json:"enqueue_ms"`
	Valid     []struct {
		Name   string          `json:"name"`
		Input  json.RawMessage `json:"input"`
		Update json.RawMessage `json:"update"`
		Record string          `json:"record"`
	} `json:"valid"`
	Invalid []struct {
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
		Field *string         `json:"field"`
	} `json:"invalid"`
	InvalidJSONText []struct {
		Name  string `json:"name"`
		Text  string `json:"text"`
		Field string `json:"field"`
	} `json:"invalid_json_text"`
}

func TestUpdates(t *testing.T) {
	var file updateFile
	load(t, "updates", &file)
	for _, v := range file.Valid {
		u, err := seen.ParseUpdate(v.Input)
		if err != nil {
			t.Fatalf("%s: refused: %v", v.Name, err)
		}
		written, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, v.Update); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_ = json.Compact(&got, written)
		if !jsonEqual(t, got.Bytes(), want.Bytes()) {
			t.Errorf("%s: update\n got %s\nwant %s", v.Name, got.Bytes(), want.Bytes())
		}
		record, err := seen.Record(seen.UpdateFunction, []any{u}, file.EnqueueMs, seen.TraceContext{})
		if err != nil || string(record) != v.Record {
			t.Errorf("%s: record (%v)\n got %s\nwant %s", v.Name, err, record, v.Record)
		}
	}
	for _, v := range file.Invalid {
		_, err := seen.ParseUpdate(v.Input)
		field := ""
		if v.Field != nil {
			field = *v.Field
		}
		if err == nil {
			t.Errorf("%s: accepted", v.Name)
			continue
		}
		refusedFor(t, err, field)
	}
	for _, v := range file.InvalidJSONText {
		_, err := seen.ParseUpdate([]byte(v.Text))
		refusedFor(t, err, v.Field)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys) && bytes.Equal(keyOrder(a), keyOrder(b))
}

var keyRE = regexp.MustCompile(`"([a-z_]+)":`)

func keyOrder(b []byte) []byte {
	var out []byte
	for _, m := range keyRE.FindAllSubmatch(b, -1) {
		out = append(append(out, m[1]...), ',')
	}
	return out
}

func TestBatches(t *testing.T) {
	var file struct {
		MaxUpdates int   `json:"max_updates"`
		EnqueueMs  int64 `json:"enqueue_ms"`
		Record     struct {
			Updates []json.RawMessage `json:"updates"`
			Record  string            `json:"record"`
		} `json:"record"`
		Sizes struct {
			Template map[string]any `json:"template"`
			Accepted []int          `json:"accepted"`
			Refused  []int          `json:"refused"`
		} `json:"sizes"`
		Invalid []struct {
			Name    string            `json:"name"`
			Updates []json.RawMessage `json:"updates"`
			Index   int               `json:"index"`
			Field   string            `json:"field"`
		} `json:"invalid"`
	}
	load(t, "batches", &file)
	if file.MaxUpdates != seen.MaxBatch {
		t.Fatalf("MaxBatch = %d, the vectors say %d", seen.MaxBatch, file.MaxUpdates)
	}
	var updates []seen.Update
	for _, raw := range file.Record.Updates {
		u, err := seen.ParseUpdate(raw)
		if err != nil {
			t.Fatal(err)
		}
		updates = append(updates, u)
	}
	record, err := seen.Record(seen.BatchFunction, []any{updates}, file.EnqueueMs, seen.TraceContext{})
	if err != nil || string(record) != file.Record.Record {
		t.Errorf("batch record (%v)\n got %s\nwant %s", err, record, file.Record.Record)
	}
	for _, v := range file.Invalid {
		var i int
		var err error
		for i = range v.Updates {
			if _, err = seen.ParseUpdate(v.Updates[i]); err != nil {
				break
			}
		}
		if i != v.Index {
			t.Errorf("%s: first bad index %d, want %d", v.Name, i, v.Index)
		}
		refusedFor(t, err, v.Field)
	}
}

type recordVector struct {
	Name        string            `json:"name"`
	Function    string            `json:"function"`
	Args        []json.RawMessage `json:"args"`
	Traceparent string            `json:"traceparent"`
	Tracestate  string            `json:"tracestate"`
	Record      string            `json:"record"`
	Field       string            `json:"field"`
}

func TestRecords(t *testing.T) {
	var file struct {
		EnqueueMs int64          `json:"enqueue_ms"`
		Valid     []recordVector `json:"valid"`
		Invalid   []recordVector `json:"invalid"`
	}
	load(t, "records", &file)
	for _, v := range file.Valid {
		for _, native := range []bool{false, true} {
			args := make([]any, len(v.Args))
			for i, raw := range v.Args {
				args[i] = raw
				if native { // decoded into Go values (maps, json.Number, ...) and back
					dec := json.NewDecoder(bytes.NewReader(raw))
					dec.UseNumber()
					if err := dec.Decode(&args[i]); err != nil {
						t.Fatal(err)
					}
				}
			}
			trace := seen.TraceContext{Traceparent: v.Traceparent, Tracestate: v.Tracestate}
			got, err := seen.Record(v.Function, args, file.EnqueueMs, trace)
			if err != nil || string(got) != v.Record {
				t.Errorf("%s (native %v): %v\n got %s\nwant %s", v.Name, native, err, got, v.Record)
			}
		}
	}
	for _, v := range file.Invalid {
		_, err := seen.Record(v.Function, nil, file.EnqueueMs, seen.TraceContext{})
		refusedFor(t, err, v.Field)
	}
}

func TestTraceContext(t *testing.T) {
	var file struct {
		Valid []struct {
			Traceparent string `json:"traceparent"`
			Tracestate  string `json:"tracestate"`
		} `json:"valid"`
		Invalid []struct {
			Traceparent string `json:"traceparent"`
			Tracestate  string `json:"tracestate"`
			Why         string `json:"why"`
			Field       string `json:"field"`
		} `json:"invalid"`
	}
	load(t, "trace_context", &file)
	for _, v := range file.Valid {
		if err := (seen.TraceContext{Traceparent: v.Traceparent, Tracestate: v.Tracestate}).Check(); err != nil {
			t.Errorf("%q %q refused: %v", v.Traceparent, v.Tracestate, err)
		}
	}
	for _, v := range file.Invalid {
		err := seen.TraceContext{Traceparent: v.Traceparent, Tracestate: v.Tracestate}.Check()
		if err == nil {
			t.Errorf("%s: accepted", v.Why)
			continue
		}
		refusedFor(t, err, v.Field)
	}
}

type putSettings struct {
	Namespace      string `json:"namespace"`
	Shards         int    `json:"shards"`
	PendingLeaseMs int64  `json:"pending_lease_ms"`
	PendingTTLMs   int64  `json:"pending_ttl_ms"`
}

func (s putSettings) download() seen.DownloadSettings {
	return seen.DownloadSettings{
		Namespace: s.Namespace, Shards: s.Shards,
		PendingLease: time.Duration(s.PendingLeaseMs) * time.Millisecond,
		PendingTTL:   time.Duration(s.PendingTTLMs) * time.Millisecond,
	}
}

func TestPendingPut(t *testing.T) {
	var file struct {
		Defaults       putSettings       `json:"defaults"`
		DrainIDPattern string            `json:"drain_id_pattern"`
		DrainFunction  string            `json:"drain_function"`
		Outcomes       map[string]string `json:"outcomes"`
		EnqueueDrainOn []int             `json:"enqueue_drain_on"`
		Vectors        []struct {
			Settings putSettings     `json:"settings"`
			Update   json.RawMessage `json:"update"`
			DrainID  string          `json:"drain_id"`
			NowMs    int64           `json:"now_ms"`
			Shard    int             `json:"shard"`
			Keys     []string        `json:"keys"`
			Args     []string        `json:"args"`
		} `json:"vectors"`
		DownloadKeys []struct {
			Namespace  string `json:"namespace"`
			Shards     int    `json:"shards"`
			JobID      string `json:"job_id"`
			UserID     string `json:"user_id"`
			Shard      int    `json:"shard"`
			Progress   string `json:"progress"`
			Pending    string `json:"pending"`
			PendingSet string `json:"pending_set"`
			Drain      string `json:"drain"`
			Stats      string `json:"stats"`
			Events     string `json:"events"`
			Active     string `json:"active"`
			UserIndex  string `json:"user_index"`
		} `json:"download_keys"`
	}
	load(t, "pending_put", &file)
	if file.Defaults.download() != seen.DefaultDownloadSettings() {
		t.Errorf("DefaultDownloadSettings %+v, the vectors say %+v", seen.DefaultDownloadSettings(), file.Defaults)
	}
	if file.DrainFunction != seen.DrainFunction {
		t.Errorf("DrainFunction %q, want %q", seen.DrainFunction, file.DrainFunction)
	}
	for code, name := range file.Outcomes {
		o := seen.Outcome(int(code[0] - '0'))
		if len(code) != 1 || o.String() != name {
			t.Errorf("outcome %s is %q; ours is %q", code, name, o)
		}
		needs := false
		for _, c := range file.EnqueueDrainOn {
			needs = needs || c == int(o)
		}
		if o.NeedsDrain() != needs {
			t.Errorf("outcome %s: NeedsDrain %v, want %v", name, o.NeedsDrain(), needs)
		}
	}
	pattern := regexp.MustCompile(file.DrainIDPattern)
	for _, shard := range []int{0, 9, 1023} {
		id := seen.NewDrainID(shard)
		m := pattern.FindStringSubmatch(id)
		if m == nil || m[1] != strings.Split(id, ":")[1] {
			t.Errorf("NewDrainID(%d) = %q does not match %s", shard, id, file.DrainIDPattern)
		}
	}
	for _, v := range file.Vectors {
		u, err := seen.ParseUpdate(v.Update)
		if err != nil {
			t.Fatal(err)
		}
		settings := v.Settings.download()
		if err := settings.Check(); err != nil {
			t.Fatal(err)
		}
		keys, args := settings.PendingPut(u, v.DrainID, v.NowMs)
		if strings.Join(keys, "\n") != strings.Join(v.Keys, "\n") {
			t.Errorf("%s keys\n got %q\nwant %q", v.DrainID, keys, v.Keys)
		}
		if strings.Join(args, "\x00") != strings.Join(v.Args, "\x00") {
			t.Errorf("%s args\n got %q\nwant %q", v.DrainID, args, v.Args)
		}
		if got := seen.ShardOf(u.JobID, settings.Shards); got != v.Shard {
			t.Errorf("%s shard %d, want %d", v.DrainID, got, v.Shard)
		}
	}
	for _, v := range file.DownloadKeys {
		s := seen.DownloadSettings{Namespace: v.Namespace, Shards: v.Shards}
		k := s.Keys(v.JobID, v.UserID)
		got := []any{k.Shard, k.Progress, k.Pending, k.PendingSet, k.Drain, k.Stats, k.Events, k.Active, k.UserIndex}
		want := []any{v.Shard, v.Progress, v.Pending, v.PendingSet, v.Drain, v.Stats, v.Events, v.Active, v.UserIndex}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s/%s key %d: got %v, want %v", v.Namespace, v.JobID, i, got[i], want[i])
			}
		}
	}
}
