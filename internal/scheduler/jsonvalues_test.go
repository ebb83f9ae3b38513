package scheduler_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// TestNormalizeJSON pins what REST (json.Number from UseNumber) and GraphQL
// (json.Number from variables, int64 and nil slices from inline literals)
// rely on: numbers become float64 as encoding/json would give them, and the
// stored form of the object is what the client wrote.
func TestNormalizeJSON(t *testing.T) {
	for _, tt := range []struct {
		desc     string
		in, want map[string]any
		// stored is the JSON the normalised object encodes to.
		stored string
	}{
		{desc: "nil stays nil", in: nil, want: nil, stored: "null"},
		{desc: "empty stays empty", in: map[string]any{}, want: map[string]any{}, stored: "{}"},
		{
			desc:   "REST numbers (json.Number)",
			in:     map[string]any{"max_tokens": json.Number("256"), "temperature": json.Number("0.5")},
			want:   map[string]any{"max_tokens": 256.0, "temperature": 0.5},
			stored: `{"max_tokens":256,"temperature":0.5}`,
		},
		{
			desc:   "GraphQL inline literals (int64)",
			in:     map[string]any{"max_tokens": int64(256), "n": 3, "m": int32(4), "temperature": 0.5},
			want:   map[string]any{"max_tokens": 256.0, "n": 3.0, "m": 4.0, "temperature": 0.5},
			stored: `{"m":4,"max_tokens":256,"n":3,"temperature":0.5}`,
		},
		{
			desc:   "a number beyond float64 keeps its text",
			in:     map[string]any{"x": json.Number("1e400")},
			want:   map[string]any{"x": "1e400"},
			stored: `{"x":"1e400"}`,
		},
		{
			desc: "nested objects and lists",
			in: map[string]any{"a": map[string]any{"b": []any{json.Number("1"), int64(2), "three", true, nil}},
				"c": []any{map[string]any{"d": json.Number("-7.25")}}},
			want: map[string]any{"a": map[string]any{"b": []any{1.0, 2.0, "three", true, nil}},
				"c": []any{map[string]any{"d": -7.25}}},
			stored: `{"a":{"b":[1,2,"three",true,null]},"c":[{"d":-7.25}]}`,
		},
		{
			desc:   "an inline empty GraphQL list (a nil slice) stays a list",
			in:     map[string]any{"stop": []any(nil), "headers": map[string]any(nil)},
			want:   map[string]any{"stop": []any{}, "headers": map[string]any{}},
			stored: `{"headers":{},"stop":[]}`,
		},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			got := scheduler.NormalizeJSON(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NormalizeJSON (-want +got):\n%s", diff)
			}
			if (got == nil) != (tt.want == nil) {
				t.Errorf("NormalizeJSON(%#v) = %#v, want nil %v", tt.in, got, tt.want == nil)
			}
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if string(b) != tt.stored {
				t.Errorf("stored as %s, want %s", b, tt.stored)
			}
		})
	}
}

// TestNormalizeJSONLeavesItsInputAlone: a GraphQL argument can be the
// request's own variables map, so the normaliser copies.
func TestNormalizeJSONLeavesItsInputAlone(t *testing.T) {
	inner := []any{json.Number("1")}
	in := map[string]any{"n": json.Number("2"), "list": inner, "obj": map[string]any{"k": int64(3)}}
	scheduler.NormalizeJSON(in)
	want := map[string]any{"n": json.Number("2"), "list": []any{json.Number("1")}, "obj": map[string]any{"k": int64(3)}}
	if diff := cmp.Diff(want, in); diff != "" {
		t.Errorf("input changed (-want +got):\n%s", diff)
	}
}
