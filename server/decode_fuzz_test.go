package server

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// FuzzDecodeBodies feeds arbitrary bytes to the strict JSON decoder of the
// REST create/update bodies. It must never panic; a rejected body is a 400
// BAD_USER_INPUT naming a field (or "body"); an accepted body is one valid
// JSON object whose decoded value survives a round trip, and its params or
// config survive number normalisation.
func FuzzDecodeBodies(f *testing.F) {
	for _, s := range []string{
		`{"model_id": 1, "type": "text-generation", "input": "hi", "priority": 2}`,
		`{"model_id": 1, "type": "translation", "input": "hola", "params": {"target_language": "en", "max_tokens": 5}}`,
		`{"model_id": 1e400}`, `{"model_id": "1"}`, `{"input": "\ud800"}`, `{"priority": -1, "max_retries": 1.5}`,
		`{"params": {"a": [1, 2.5, 1e308, -0, {"b": null}]}}`, `{"x": 1}`, `[]`, `null`, `{}{}`, `{"input": "a"} x`,
		`{"name": "m", "type": "simulator", "config": {"latency_ms": 9007199254740993}, "max_workers": 3}`,
		`{"fallbacks": [1, 2, "3"]}`, "", " ", `{"input": "` + "\x00\xff" + `"}`, `{"timeout_seconds": 99999999999999999999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		targets := []func() any{
			func() any { return &createTaskBody{} },
			func() any { return &createModelBody{} },
			func() any { return &updateModelBody{} },
		}
		for _, newDst := range targets {
			dst := newDst()
			err := decodeBytes(raw, dst)
			if err != nil {
				var se *scheduler.Error
				if !errors.As(err, &se) || se.Code != scheduler.CodeInvalid || se.Field == "" || se.Message == "" {
					t.Fatalf("decode %q into %T: error %#v, want BAD_USER_INPUT naming a field", raw, dst, err)
				}
				continue
			}
			if !json.Valid(raw) {
				t.Fatalf("decode accepted invalid JSON %q into %T", raw, dst)
			}
			again, err := json.Marshal(dst)
			if err != nil {
				t.Fatalf("re-encode %T from %q: %v", dst, raw, err)
			}
			back := newDst()
			if err := decodeBytes(again, back); err != nil {
				t.Fatalf("decode of re-encoded %s (from %q): %v", again, raw, err)
			}
			switch d := dst.(type) {
			case *createTaskBody:
				d.Params = scheduler.NormalizeJSON(d.Params)
				if _, err := json.Marshal(d.Params); err != nil {
					t.Fatalf("params of %q do not encode after normalisation: %v", raw, err)
				}
			case *createModelBody:
				d.Config = scheduler.NormalizeJSON(d.Config)
				if _, err := json.Marshal(d.Config); err != nil {
					t.Fatalf("config of %q does not encode after normalisation: %v", raw, err)
				}
			case *updateModelBody:
				if !reflect.DeepEqual(d.Fallbacks, back.(*updateModelBody).Fallbacks) {
					t.Fatalf("fallbacks changed in a round trip of %q", raw)
				}
			}
		}
	})
}
