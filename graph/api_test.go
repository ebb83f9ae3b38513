package graph_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/secrets"
)

// TestQueriesAndMutations drives every query and mutation through the real
// HTTP handler of a running process.
func TestQueriesAndMutations(t *testing.T) {
	s := &apiStory{t: t, env: apptest.New(t, nil), now: time.Now().UTC()}
	s.models()
	s.createTasks()
	s.filterTasks()
	s.pageAndNodes()
	s.cancelRetryRunDelete()
	s.statsAndHealth()
}

// apiStory is TestQueriesAndMutations' process and what its steps create,
// in order: each step starts from what the earlier ones left.
type apiStory struct {
	t     *testing.T
	env   *apptest.Env
	now   time.Time
	off   modelView  // an offline simulator
	t1    taskView   // a text-generation task on off, priority 3
	idem  taskView   // a summarization task on off with idempotency key k-1
	batch []taskView // a translation (priority 1) and an embedding on off
}

// models: createModel, updateModel, model(id) and the models connection;
// configs come back masked and a masked secret sent back keeps the stored one.
func (s *apiStory) models() {
	t := s.t
	fast := map[string]any{"latency_ms": 0, "tokens_per_second": 0, "output_tokens": 3}

	// createModel: the config comes back masked, never in clear.
	oa := createModel(t, s.env, "", map[string]any{"name": "gpt", "type": "OPENAI", "maxWorkers": 1,
		"config": map[string]any{"api_key": "sk-secret-value-1234", "base_url": "http://127.0.0.1:1/v1", "model": "gpt-3.5-turbo"}})
	masked, _ := oa.Config["api_key"].(string)
	if oa.Type != "OPENAI" || oa.Status != "ONLINE" || !strings.Contains(masked, "...") || strings.Contains(masked, "secret") || oa.Config["model"] != "gpt-3.5-turbo" {
		t.Fatalf("createModel = %+v, want type OPENAI, ONLINE, masked api_key", oa)
	}
	s.off = simulator(t, s.env, "sim-off", "OFFLINE", fast)

	// model(id) and updateModel: a masked secret sent back keeps the stored one.
	var um struct{ UpdateModel modelView }
	mustData(t, s.env, "", `mutation($id: ID!, $in: UpdateModelInput!) { updateModel(id: $id, input: $in) { id name maxWorkers config } }`,
		map[string]any{"id": oa.ID, "in": map[string]any{"name": "gpt-renamed", "maxWorkers": 2,
			"config": map[string]any{"api_key": masked, "base_url": "http://127.0.0.1:1/v1", "model": "gpt-4"}}}, &um)
	if um.UpdateModel.Name != "gpt-renamed" || um.UpdateModel.MaxWorkers != 2 || um.UpdateModel.Config["model"] != "gpt-4" {
		t.Fatalf("updateModel = %+v", um.UpdateModel)
	}
	var gm struct{ Model modelView }
	mustData(t, s.env, "", `query($id: ID!) { model(id: $id) { id name config } }`, map[string]any{"id": oa.ID}, &gm)
	if k, _ := gm.Model.Config["api_key"].(string); !strings.Contains(k, "...") || strings.Contains(k, "secret") {
		t.Fatalf("model(id).config = %v, want api_key masked", gm.Model.Config)
	}
	stored, err := s.env.App.Store.Client.Model.Get(context.Background(), oa.ID.N)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := secrets.OpenModelConfig(s.env.App.Config, stored.Config)
	if err != nil || opened["api_key"] != "sk-secret-value-1234" {
		t.Fatalf("stored api_key after sending back the masked value = %v (%v), want the original secret", opened["api_key"], err)
	}

	// models connection with a where filter and ordering.
	var ms struct {
		Models struct {
			TotalCount int
			Edges      []struct{ Node modelView }
		}
	}
	mustData(t, s.env, "", `{ models(where: {statusIn: [OFFLINE], deletedAtIsNil: true}, orderBy: [{field: NAME}]) { totalCount edges { node { id name status } } } }`, nil, &ms)
	if ms.Models.TotalCount != 1 || ms.Models.Edges[0].Node.ID != s.off.ID {
		t.Fatalf("models(where status OFFLINE) = %+v, want only %v", ms.Models, s.off.ID)
	}
}

// createTasks: createTask (waiting on the offline model, saying why),
// idempotencyKey, and createTasks, all or nothing.
func (s *apiStory) createTasks() {
	t := s.t
	// createTask on the offline model: it waits, and says why.
	s.t1 = createTask(t, s.env, "", map[string]any{"modelID": s.off.ID, "type": "TEXT_GENERATION", "input": "hello", "priority": 3})
	if s.t1.Status != "PENDING" || s.t1.Type != "TEXT_GENERATION" || s.t1.Input != "hello" || s.t1.Priority != 3 || s.t1.ModelID != s.off.ID {
		t.Fatalf("createTask = %+v", s.t1)
	}
	var gt struct {
		Task struct {
			ID            gid
			Status        string
			PendingReason *string
			PendingDetail *string
			Model         struct{ Name string }
		}
	}
	mustData(t, s.env, "", `query($id: ID!) { task(id: $id) { id status pendingReason pendingDetail queuePosition model { name } } }`, map[string]any{"id": s.t1.ID}, &gt)
	if gt.Task.PendingReason == nil || *gt.Task.PendingReason != "model_offline" || gt.Task.PendingDetail == nil || gt.Task.Model.Name != "sim-off" {
		t.Fatalf("task(id) = %+v, want pendingReason model_offline", gt.Task)
	}

	// idempotencyKey: a replay returns the same task, another request with the key conflicts.
	in := map[string]any{"modelID": s.off.ID, "type": "SUMMARIZATION", "input": "long text", "idempotencyKey": "k-1"}
	var b taskView
	s.idem, b = createTask(t, s.env, "", in), createTask(t, s.env, "", in)
	if s.idem.ID != b.ID {
		t.Fatalf("idempotent replay created task %v, then %v", s.idem.ID, b.ID)
	}
	in["input"] = "other text"
	e := wantCode(t, s.env, "", createTaskOp, map[string]any{"in": in}, "CONFLICT")
	if !strings.Contains(e.Message, "idempotency key") {
		t.Fatalf("conflict message %q", e.Message)
	}

	// createTasks: all or nothing.
	batch := []map[string]any{
		{"modelID": s.off.ID, "type": "TRANSLATION", "input": "bonjour", "params": map[string]any{"target_language": "en"}, "priority": 1},
		{"modelID": s.off.ID, "type": "EMBEDDING", "input": "vector me"},
	}
	const createTasksOp = `mutation($in: [CreateTaskInput!]!) { createTasks(inputs: $in) { id type priority } }`
	bad := append([]map[string]any{}, batch...)
	bad = append(bad, map[string]any{"modelID": s.off.ID, "type": "TRANSLATION", "input": "x"}) // no target_language
	before := s.env.CountTasks()
	e = wantCode(t, s.env, "", createTasksOp, map[string]any{"in": bad}, "BAD_USER_INPUT")
	if e.Extensions["field"] != "inputs[2].params.target_language" || s.env.CountTasks() != before {
		t.Fatalf("bad batch: field %v, tasks %d -> %d; want inputs[2].params.target_language and nothing created", e.Extensions["field"], before, s.env.CountTasks())
	}
	var cb struct{ CreateTasks []taskView }
	mustData(t, s.env, "", createTasksOp, map[string]any{"in": batch}, &cb)
	if len(cb.CreateTasks) != 2 || cb.CreateTasks[0].Type != "TRANSLATION" || cb.CreateTasks[1].Priority != 2 {
		t.Fatalf("createTasks = %+v", cb.CreateTasks)
	}
	s.batch = cb.CreateTasks
}

// filterTasks: the tasks connection's filters.
func (s *apiStory) filterTasks() {
	t := s.t
	// tasks connection: filters by status, model, type, priority, created range.
	type conn struct {
		Tasks struct {
			TotalCount int
			Edges      []struct{ Node taskView }
		}
	}
	ids := func(c conn) []gid {
		var out []gid
		for _, e := range c.Tasks.Edges {
			out = append(out, e.Node.ID)
		}
		return out
	}
	for _, tc := range []struct {
		desc  string
		where string
		want  []gid
	}{
		{"type", `{type: TRANSLATION}`, []gid{s.batch[0].ID}},
		{"priority", `{priorityIn: [1, 3]}`, []gid{s.batch[0].ID, s.t1.ID}},
		{"status and model", fmt.Sprintf(`{status: PENDING, modelID: %q, typeIn: [SUMMARIZATION, EMBEDDING]}`, s.off.ID.opaque()), []gid{s.batch[1].ID, s.idem.ID}},
		{"created range", fmt.Sprintf(`{createdAtGTE: %q, createdAtLT: %q, type: TEXT_GENERATION}`, s.now.Add(-time.Hour).Format(time.RFC3339), s.now.Add(time.Hour).Format(time.RFC3339)), []gid{s.t1.ID}},
		{"empty created range", fmt.Sprintf(`{createdAtLT: %q}`, s.now.Add(-time.Hour).Format(time.RFC3339)), nil},
	} {
		var c conn
		mustData(t, s.env, "", `{ tasks(where: `+tc.where+`, orderBy: [{field: PRIORITY, direction: ASC}, {field: CREATED_AT, direction: DESC}]) { totalCount edges { node { id } } } }`, nil, &c)
		if diff := cmp.Diff(tc.want, ids(c)); diff != "" || c.Tasks.TotalCount != len(tc.want) {
			t.Errorf("%s: tasks (-want +got):\n%s (totalCount %d)", tc.desc, diff, c.Tasks.TotalCount)
		}
	}
}

// pageAndNodes: pagination of the tasks connection, node and nodes.
func (s *apiStory) pageAndNodes() {
	t := s.t
	// Pagination: first/after walk the whole list once.
	var seen []gid
	after := any(nil)
	for range 10 {
		var c struct {
			Tasks struct {
				Edges    []struct{ Node taskView }
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		mustData(t, s.env, "", `query($after: Cursor) { tasks(first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`, map[string]any{"after": after}, &c)
		for _, e := range c.Tasks.Edges {
			seen = append(seen, e.Node.ID)
		}
		if !c.Tasks.PageInfo.HasNextPage {
			break
		}
		after = *c.Tasks.PageInfo.EndCursor
	}
	if len(seen) != 4 {
		t.Fatalf("paginated %v, want the 4 tasks", seen)
	}

	// node and nodes.
	var nd struct {
		Node struct {
			Typename string `json:"__typename"`
			ID       gid
			Name     string
		}
		Nodes []*struct{ ID gid }
	}
	mustData(t, s.env, "", `query($m: ID!, $ids: [ID!]!) { node(id: $m) { __typename id ... on Model { name } } nodes(ids: $ids) { id } }`,
		map[string]any{"m": s.off.ID, "ids": []gid{s.t1.ID, s.idem.ID}}, &nd)
	if nd.Node.Typename != "Model" || nd.Node.Name != "sim-off" || len(nd.Nodes) != 2 || nd.Nodes[1].ID != s.idem.ID {
		t.Fatalf("node/nodes = %+v", nd)
	}
}

// cancelRetryRunDelete: deleteModel refused while tasks wait, cancelTask
// and retryTask, setModelStatus running the tasks, then deleteModel.
func (s *apiStory) cancelRetryRunDelete() {
	t := s.t
	// deleteModel refuses while tasks are unfinished.
	const deleteOp = `mutation($id: ID!) { deleteModel(id: $id) { id deletedAt } }`
	wantCode(t, s.env, "", deleteOp, map[string]any{"id": s.off.ID}, "CONFLICT")

	// cancelTask, then retryTask; retrying a pending task conflicts.
	const cancelOp = `mutation($id: ID!) { cancelTask(id: $id) { id status error } }`
	const retryOp = `mutation($id: ID!) { retryTask(id: $id) { id status } }`
	var ct struct{ CancelTask taskView }
	mustData(t, s.env, "", cancelOp, map[string]any{"id": s.t1.ID}, &ct)
	if ct.CancelTask.Status != "CANCELLED" {
		t.Fatalf("cancelTask = %+v", ct.CancelTask)
	}
	wantCode(t, s.env, "", cancelOp, map[string]any{"id": s.t1.ID}, "CONFLICT")
	var rt struct{ RetryTask taskView }
	mustData(t, s.env, "", retryOp, map[string]any{"id": s.t1.ID}, &rt)
	if rt.RetryTask.Status != "PENDING" {
		t.Fatalf("retryTask = %+v", rt.RetryTask)
	}
	wantCode(t, s.env, "", retryOp, map[string]any{"id": s.t1.ID}, "CONFLICT")

	// setModelStatus ONLINE: the waiting tasks run and complete.
	var ss struct{ SetModelStatus modelView }
	mustData(t, s.env, "", setStatusOp, map[string]any{"id": s.off.ID, "s": "ONLINE"}, &ss)
	if ss.SetModelStatus.Status != "ONLINE" {
		t.Fatalf("setModelStatus = %+v", ss.SetModelStatus)
	}
	for _, id := range []gid{s.t1.ID, s.idem.ID, s.batch[0].ID, s.batch[1].ID} {
		s.env.WaitTask(id.N, "completed", 30*time.Second)
	}
	var done struct {
		Task struct {
			Status         string
			Output         string
			Attempts       int
			AttemptHistory []struct {
				Number int
				Status string
			}
			PendingReason *string
		}
	}
	mustData(t, s.env, "", `query($id: ID!) { task(id: $id) { status output attempts attemptHistory { number status } pendingReason } }`, map[string]any{"id": s.t1.ID}, &done)
	if done.Task.Status != "COMPLETED" || done.Task.Output == "" || done.Task.PendingReason != nil ||
		len(done.Task.AttemptHistory) != 1 || done.Task.AttemptHistory[0].Status != "SUCCEEDED" {
		t.Fatalf("completed task = %+v", done.Task)
	}

	// deleteModel now succeeds; model(id) no longer finds it, node(id) still does.
	var dm struct {
		DeleteModel struct {
			ID        gid
			DeletedAt *string
		}
	}
	mustData(t, s.env, "", deleteOp, map[string]any{"id": s.off.ID}, &dm)
	if dm.DeleteModel.DeletedAt == nil {
		t.Fatalf("deleteModel = %+v, want deletedAt", dm.DeleteModel)
	}
	wantCode(t, s.env, "", `query($id: ID!) { model(id: $id) { id } }`, map[string]any{"id": s.off.ID}, "NOT_FOUND")
}

func (s *apiStory) statsAndHealth() {
	t := s.t
	// Stats and health.
	var st struct {
		DashboardStats struct {
			TotalTasks  int
			Completed   int
			SuccessRate float64
			ByStatus    []struct {
				Status string
				Count  int
			}
			PerModel []struct {
				ModelID gid
				Status  string
			}
		}
		TaskStatsByDate []struct {
			Date      string
			Total     int
			Completed int
		}
		SystemHealth struct {
			Status   string
			Mode     string
			Database struct{ Ok bool }
			Redis    struct{ Ok bool }
		}
	}
	mustData(t, s.env, "", `{
		dashboardStats { totalTasks completed successRate byStatus { status count } perModel { modelID status } }
		taskStatsByDate(days: 3) { date total completed }
		systemHealth { status mode database { ok } redis { ok } }
	}`, nil, &st)
	ds := st.DashboardStats
	if ds.TotalTasks != 4 || ds.Completed != 4 || ds.SuccessRate != 1 || len(ds.ByStatus) != 5 || ds.ByStatus[2].Status != "COMPLETED" || ds.ByStatus[2].Count != 4 {
		t.Fatalf("dashboardStats = %+v", ds)
	}
	days := st.TaskStatsByDate
	if len(days) != 3 || days[2].Date != s.now.Format("2006-01-02") || days[2].Total != 4 || days[2].Completed != 4 {
		t.Fatalf("taskStatsByDate = %+v", days)
	}
	if st.SystemHealth.Status == "unavailable" || !st.SystemHealth.Database.Ok || !st.SystemHealth.Redis.Ok || st.SystemHealth.Mode == "" {
		t.Fatalf("systemHealth = %+v", st.SystemHealth)
	}
}

// TestErrorCodes checks extensions.code for each class of mistake.
func TestErrorCodes(t *testing.T) {
	env := apptest.New(t, func(c *config.Config) { c.Queue.MaxQueueSize = 1; c.Queue.MaxBatchSize = 2 })
	m := simulator(t, env, "sim", "OFFLINE", nil)
	task := map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x"}

	e := wantCode(t, env, "", createTaskOp, map[string]any{"in": map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": " "}}, "BAD_USER_INPUT")
	if e.Extensions["field"] != "input" {
		t.Errorf("empty input: field %v, want input", e.Extensions["field"])
	}
	wantCode(t, env, "", createTaskOp, map[string]any{"in": map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "priority": 7}}, "BAD_USER_INPUT")
	wantCode(t, env, "", `{ taskStatsByDate(days: 0) { date } }`, nil, "BAD_USER_INPUT")
	wantCode(t, env, "", `{ tasks(first: 1000) { totalCount } }`, nil, "BAD_USER_INPUT")
	wantCode(t, env, "", `mutation($in: [CreateTaskInput!]!) { createTasks(inputs: $in) { id } }`, map[string]any{"in": []any{task, task, task}}, "BAD_USER_INPUT")
	wantCode(t, env, "", `{ task(id: 424242) { id } }`, nil, "NOT_FOUND")
	wantCode(t, env, "", `mutation { cancelTask(id: 424242) { id } }`, nil, "NOT_FOUND")
	wantCode(t, env, "", createModelOp, map[string]any{"in": map[string]any{"name": "sim", "type": "SIMULATOR"}}, "CONFLICT")
	createTask(t, env, "", task)
	e = wantCode(t, env, "", createTaskOp, map[string]any{"in": task}, "QUEUE_FULL")
	if e.Extensions["retryAfter"] == nil {
		t.Errorf("QUEUE_FULL without retryAfter: %+v", e)
	}
	// Protocol-level errors keep gqlgen's codes.
	wantCode(t, env, "", `{ tasks { nope } }`, nil, "GRAPHQL_VALIDATION_FAILED")
	wantCode(t, env, "", `mutation { createTask(input: {modelID: 1, type: POETRY, input: "x"}) { id } }`, nil, "GRAPHQL_VALIDATION_FAILED")
}

// TestPayloadTooLarge: a body over server.max_body_bytes answers 413 with
// PAYLOAD_TOO_LARGE, as the REST API does. Breakage caught: leaving the
// body to gqlgen, which answered 200 with a hidden INTERNAL error.
func TestPayloadTooLarge(t *testing.T) {
	env := apptest.New(t, func(c *config.Config) { c.Server.MaxBodyBytes = 4 << 10 })
	body := map[string]any{"query": `{ systemHealth { status } }`, "variables": map[string]any{"pad": strings.Repeat("x", 8<<10)}}
	status, r := postStatus(t, env, "", body)
	if status != http.StatusRequestEntityTooLarge || len(r.Errors) != 1 || r.Errors[0].code() != "PAYLOAD_TOO_LARGE" {
		t.Fatalf("oversized body: status %d, errors %+v; want 413 PAYLOAD_TOO_LARGE", status, r.Errors)
	}
	// Under the limit the same operation answers.
	body["variables"] = map[string]any{"pad": "x"}
	if status, r := postStatus(t, env, "", body); status != http.StatusOK || len(r.Errors) != 0 {
		t.Fatalf("small body: status %d, errors %+v", status, r.Errors)
	}
}

// TestDatabaseUnavailable: with the database gone, queries and mutations
// answer UNAVAILABLE with retryAfter, not INTERNAL. Breakage caught:
// database errors classified as internal (dbErr), which hides the message
// and tells clients not to retry.
func TestDatabaseUnavailable(t *testing.T) {
	env := apptest.New(t, nil)
	if err := env.App.Store.DB.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`{ task(id: 1) { id } }`, `{ tasks(first: 1) { totalCount } }`, `mutation { cancelTask(id: 1) { id } }`} {
		e := wantCode(t, env, "", q, nil, "UNAVAILABLE")
		if e.Extensions["retryAfter"] == nil || !strings.Contains(e.Message, "database") {
			t.Errorf("%s: %+v, want retryAfter and a message naming the database", q, e)
		}
	}
}

// TestLimitsAndPersistedQueries covers the depth and complexity limits and
// automatic persisted queries.
func TestLimitsAndPersistedQueries(t *testing.T) {
	env := apptest.New(t, nil)
	deep := `{ tasks(first: 1) { edges { node { model { tasks(first: 1) { edges { node { model { tasks(first: 1) { edges { node { model { tasks(first: 1) { edges { node { id } } } } } } } } } } } } } } } }`
	wantCode(t, env, "", deep, nil, "DEPTH_LIMIT_EXCEEDED")
	wide := `{ ` + strings.Repeat(`a%d: tasks(first: 100) { edges { node { id model { id name } } } } `, 1) + `}`
	var parts []string
	for i := range 12 {
		parts = append(parts, fmt.Sprintf(wide[2:len(wide)-1], i))
	}
	wantCode(t, env, "", "{ "+strings.Join(parts, " ")+" }", nil, "COMPLEXITY_LIMIT_EXCEEDED")

	// APQ: the hash alone is unknown at first, then known once sent with the query.
	q := `{ systemHealth { status } }`
	sum := sha256.Sum256([]byte(q))
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	r := postBody(t, env, "", map[string]any{"extensions": ext})
	if len(r.Errors) != 1 || r.Errors[0].Message != "PersistedQueryNotFound" {
		t.Fatalf("unknown hash: %+v", r)
	}
	if r := postBody(t, env, "", map[string]any{"query": q, "extensions": ext}); len(r.Errors) > 0 {
		t.Fatalf("register persisted query: %+v", r.Errors)
	}
	if r := postBody(t, env, "", map[string]any{"extensions": ext}); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "systemHealth") {
		t.Fatalf("persisted query by hash: %+v %s", r.Errors, r.Data)
	}
}

// TestIntrospectionSwitch: introspection follows server.introspection.
func TestIntrospectionSwitch(t *testing.T) {
	off := false
	env := apptest.New(t, func(c *config.Config) { c.Server.Introspection = &off })
	r := post(t, env, "", `{ __schema { queryType { name } } }`, nil)
	if len(r.Errors) == 0 {
		t.Fatalf("introspection answered while disabled: %s", r.Data)
	}
	on := true
	env2 := apptest.New(t, func(c *config.Config) { c.Server.Introspection = &on })
	var out struct {
		Schema struct{ QueryType struct{ Name string } } `json:"__schema"`
	}
	mustData(t, env2, "", `{ __schema { queryType { name } } }`, nil, &out)
	if out.Schema.QueryType.Name != "Query" {
		t.Fatalf("introspection = %+v", out)
	}
}
