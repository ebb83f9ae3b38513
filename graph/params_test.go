package graph_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// TestTaskParamsInlineAndFromVariables: params written inline in the query
// (integers as int64, an empty list as a nil slice) and the same params sent
// as variables (json.Number) pass the same validation and are stored alike.
func TestTaskParamsInlineAndFromVariables(t *testing.T) {
	env := apptest.New(t, nil)
	m := simulator(t, env, "sim-params", "OFFLINE", map[string]any{"latency_ms": 0})
	const want = `{"max_tokens":5,"stop":[],"temperature":1}`

	var inline struct{ CreateTask taskView }
	mustData(t, env, "", `mutation($m: ID!) { createTask(input: {modelID: $m, type: TEXT_GENERATION, input: "hi",
		params: {max_tokens: 5, temperature: 1, stop: []}}) { id } }`, map[string]any{"m": m.ID}, &inline)
	fromVars := createTask(t, env, "", map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "hi",
		"params": map[string]any{"max_tokens": 5, "temperature": 1, "stop": []any{}}})

	for desc, id := range map[string]gid{"inline": inline.CreateTask.ID, "variables": fromVars.ID} {
		row, err := env.App.Store.Client.Task.Get(context.Background(), id.N)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(row.Params)
		if string(got) != want {
			t.Errorf("%s params stored as %s, want %s", desc, got, want)
		}
	}
}
