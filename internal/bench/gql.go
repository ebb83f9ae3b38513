package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/graph/nodeid"
)

// gqlClient speaks GraphQL over HTTP POST to /graphql.
type gqlClient struct {
	url  string
	http *http.Client
}

func newGQLClient(base string, hc *http.Client) *gqlClient {
	return &gqlClient{url: base + "/graphql", http: hc}
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// queueFullError is a QUEUE_FULL answer.
type queueFullError struct{ msg string }

func (e queueFullError) Error() string { return e.msg }

// do runs one operation and decodes data into out.
func (g *gqlClient) do(ctx context.Context, query string, vars map[string]any, out any) error {
	raw, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("graphql: status %d: %.200s", resp.StatusCode, body)
	}
	if len(env.Errors) > 0 {
		if env.Errors[0].Extensions["code"] == "QUEUE_FULL" {
			return queueFullError{env.Errors[0].Message}
		}
		return fmt.Errorf("graphql: %s", env.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// available reports whether the scheduler serves the GraphQL operations the
// bench needs; why says what is missing.
func (g *gqlClient) available(ctx context.Context) (bool, string) {
	var schema struct {
		Schema struct {
			Mutation struct {
				Fields []struct{ Name string } `json:"fields"`
			} `json:"mutationType"`
			Subscription struct {
				Fields []struct{ Name string } `json:"fields"`
			} `json:"subscriptionType"`
		} `json:"__schema"`
	}
	err := g.do(ctx, `{__schema{mutationType{fields{name}} subscriptionType{fields{name}}}}`, nil, &schema)
	if err != nil {
		return false, "no GraphQL endpoint at /graphql (" + trim(err.Error()) + ")"
	}
	var have []string
	for _, f := range schema.Schema.Mutation.Fields {
		have = append(have, f.Name)
	}
	for _, f := range schema.Schema.Subscription.Fields {
		have = append(have, f.Name)
	}
	for _, want := range []string{"createTask", "createTasks", "setModelStatus", "taskUpdated", "taskEvents"} {
		if !slices.Contains(have, want) {
			return false, "GraphQL schema lacks " + want
		}
	}
	return true, ""
}

func trim(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		return s[:120] + "..."
	}
	return s
}

// gqlID is the task number inside a GraphQL task id (base64 of
// "Task:number", docs/graphql.md).
func gqlID(id string) (int, error) {
	ref, ok := nodeid.Decode(id)
	if !ok || ref.Type != nodeid.Task {
		return 0, fmt.Errorf("graphql: %q is not a task id", id)
	}
	return ref.ID, nil
}

const createTaskMutation = `mutation($in: CreateTaskInput!) { createTask(input: $in) { id } }`

func taskInput(modelID int, input string) map[string]any {
	return map[string]any{"modelID": strconv.Itoa(modelID), "type": "TEXT_GENERATION", "input": input, "priority": 2}
}

// createTask creates one task through GraphQL.
func (g *gqlClient) createTask(ctx context.Context, modelID int, input string) (int, error) {
	for {
		var out struct {
			CreateTask struct{ ID string } `json:"createTask"`
		}
		err := g.do(ctx, createTaskMutation, map[string]any{"in": taskInput(modelID, input)}, &out)
		if errors.As(err, new(queueFullError)) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			return 0, err
		}
		return gqlID(out.CreateTask.ID)
	}
}

// createTasks creates a batch through GraphQL createTasks.
func (g *gqlClient) createTasks(ctx context.Context, modelID, n int, prefix string) ([]int, error) {
	inputs := make([]map[string]any, n)
	for i := range inputs {
		inputs[i] = taskInput(modelID, prefix+" "+strconv.Itoa(i))
	}
	var out struct {
		CreateTasks []struct{ ID string } `json:"createTasks"`
	}
	err := g.do(ctx, `mutation($in: [CreateTaskInput!]!) { createTasks(inputs: $in) { id } }`, map[string]any{"in": inputs}, &out)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(out.CreateTasks))
	for i, t := range out.CreateTasks {
		if ids[i], err = gqlID(t.ID); err != nil {
			return nil, err
		}
	}
	if len(ids) != n {
		return nil, fmt.Errorf("createTasks returned %d tasks for %d inputs", len(ids), n)
	}
	return ids, nil
}
