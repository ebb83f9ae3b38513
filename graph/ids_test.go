package graph_test

import (
	"context"
	"database/sql"
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// A fresh database numbers rows from 1 in every table: REST shows and takes
// those numbers, GraphQL shows them as opaque ids (base64 of Type:number)
// that node(id:) resolves, and a typed argument takes either form.
func TestFreshDatabaseNumbersFromOne(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	sh.PlainTaskIDs = true
	env := sh.Start(t, app.RoleAll)
	// The embedded default seeds its demo model; MySQL starts empty.
	var models struct {
		Data []apptest.Model `json:"data"`
	}
	env.Do("GET", "/api/v1/models", nil, &models)
	if len(models.Data) == 0 {
		models.Data = append(models.Data, env.Simulator("first", 1, map[string]any{"latency_ms": 1}))
	}
	if m := models.Data[0]; m.ID != 1 {
		t.Fatalf("first model %s has id %d, want 1", m.Name, m.ID)
	}
	task := env.Submit(map[string]any{"model_id": 1, "type": "text-generation", "input": "hello"})
	if task.ID != 1 || task.ModelID != 1 {
		t.Fatalf("first task id %d model %d, want 1 and 1", task.ID, task.ModelID)
	}
	env.WaitTask(1, "completed", 30*time.Second)

	var got struct {
		Task struct {
			ID      gid
			ModelID gid
			Model   struct{ ID gid }
		}
	}
	mustData(t, env, "", `query($id: ID!) { task(id: $id) { id modelID model { id } } }`, map[string]any{"id": "1"}, &got)
	if want := taskGID(1); got.Task.ID != want || got.Task.ModelID != modelGID(1) || got.Task.Model.ID != modelGID(1) {
		t.Fatalf("task(id: \"1\") = %+v, want id %v and model %v", got.Task, want, modelGID(1))
	}
	if g := got.Task.ID.opaque(); g != "VGFzazox" { // base64("Task:1")
		t.Fatalf("Task 1's id is %q, want VGFzazox", g)
	}

	assertNodesResolve(t, env, got.Task.ID, got.Task.Model.ID)
	// A typed argument takes the opaque id or the number, as a string or a number.
	for _, id := range []any{got.Task.ID, "1", 1} {
		mustData(t, env, "", `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": id}, &got)
		if got.Task.ID != taskGID(1) {
			t.Fatalf("task(id: %v) = %v", id, got.Task.ID)
		}
	}
	assertConnectionsCarryOn(t, env)
}

// assertNodesResolve: node(id:) round trip with the opaque ids of task 1
// and model 1, and nodes(ids:) mixing types; the same number is another
// object under another tag.
func assertNodesResolve(t *testing.T, env *apptest.Env, taskID, modelID gid) {
	t.Helper()
	var nd struct {
		Node struct {
			Typename string `json:"__typename"`
			ID       gid
		}
		Nodes []struct {
			Typename string `json:"__typename"`
			ID       gid
		}
	}
	mustData(t, env, "", `query($id: ID!, $ids: [ID!]!) { node(id: $id) { __typename id } nodes(ids: $ids) { __typename id } }`,
		map[string]any{"id": taskID, "ids": []gid{modelID, taskID}}, &nd)
	if nd.Node.Typename != "Task" || nd.Node.ID != taskGID(1) || len(nd.Nodes) != 2 ||
		nd.Nodes[0].Typename != "Model" || nd.Nodes[0].ID != modelGID(1) || nd.Nodes[1].Typename != "Task" {
		t.Fatalf("node/nodes = %+v", nd)
	}
	// The same number is another object under another tag.
	mustData(t, env, "", `query($id: ID!) { node(id: $id) { __typename id } }`, map[string]any{"id": modelGID(1)}, &nd)
	if nd.Node.Typename != "Model" || nd.Node.ID != modelGID(1) {
		t.Fatalf("node(Model:1) = %+v", nd.Node)
	}
}

// assertConnectionsCarryOn: connections and their cursors carry on as
// before with task 1 the only task of model 1.
func assertConnectionsCarryOn(t *testing.T, env *apptest.Env) {
	t.Helper()
	var conn struct {
		Tasks struct {
			Edges []struct {
				Cursor string
				Node   struct{ ID gid }
			}
		}
	}
	mustData(t, env, "", `query($m: ID) { tasks(first: 5, where: {modelID: $m}) { edges { cursor node { id } } } }`, map[string]any{"m": modelGID(1)}, &conn)
	if len(conn.Tasks.Edges) != 1 || conn.Tasks.Edges[0].Node.ID != taskGID(1) || conn.Tasks.Edges[0].Cursor == "" {
		t.Fatalf("tasks(where modelID) = %+v", conn)
	}
	var none struct{ Tasks struct{ Edges []struct{} } }
	mustData(t, env, "", `query($a: Cursor) { tasks(first: 5, after: $a) { edges { cursor } } }`, map[string]any{"a": conn.Tasks.Edges[0].Cursor}, &none)
	if len(none.Tasks.Edges) != 0 {
		t.Fatalf("page after the only task: %+v", none)
	}
}

// Malformed, unknown and mistyped ids are BAD_USER_INPUT errors that name
// the argument; nothing is read or written.
func TestBadIDsNameTheArgument(t *testing.T) {
	env := apptest.New(t, nil)
	m := simulator(t, env, "m", "ONLINE", nil)
	for _, tc := range []struct {
		desc, query string
		vars        map[string]any
		field, msg  string
	}{
		{"garbage", `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": "not-an-id"}, "id", "is not a Task id"},
		{"wrong type", `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": m.ID}, "id", "is a Model id, want a Task id"},
		{"unknown tag", `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": "VXNlcjox"}, "id", "is not a Task id"}, // User:1
		{"zero", `query($id: ID!) { model(id: $id) { id } }`, map[string]any{"id": 0}, "id", "is not a Model id"},
		{"node needs the tag", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": "7"}, "id", "bare number"},
		{"node garbage", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": "!!"}, "id", "is not an id"},
		{"nodes element", `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, map[string]any{"ids": []any{m.ID, "x"}}, "ids[1]", "is not an id"},
		{"input field", createTaskOp, map[string]any{"in": map[string]any{"modelID": taskGID(1), "type": "TEXT_GENERATION", "input": "x"}}, "input.modelID", "is a Task id, want a Model id"},
		{"list in input", createModelOp, map[string]any{"in": map[string]any{"name": "n", "type": "SIMULATOR", "fallbacks": []any{m.ID, "zz"}}}, "input.fallbacks[1]", "is not a Model id"},
		{"where filter", `query($id: ID) { tasks(where: {id: $id}) { totalCount } }`, map[string]any{"id": m.ID}, "where.id", "is a Model id, want a Task id"},
		{"edge filter", `query($id: ID) { tasks(where: {hasModelWith: [{id: $id}]}) { totalCount } }`, map[string]any{"id": taskGID(1)}, "where.hasModelWith[0].id", "is a Task id, want a Model id"},
	} {
		e := wantCode(t, env, "", tc.query, tc.vars, "BAD_USER_INPUT")
		if e.Extensions["field"] != tc.field || !strings.HasPrefix(e.Message, tc.field+": ") || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: error %q (field %v), want field %s and %q", tc.desc, e.Message, e.Extensions["field"], tc.field, tc.msg)
		}
	}
	if n := env.CountTasks(); n != 0 {
		t.Fatalf("%d tasks written by refused requests", n)
	}
	// An id that decodes but names no row is NOT_FOUND.
	wantCode(t, env, "", `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": taskGID(99)}, "NOT_FOUND")
}

// oldSchema is scripts/init.sql as it was while ent's global ids gave each
// table its own 2^32 range of ids (the first model 8589934593, the first
// task 12884901889).
//
//go:embed testdata/init-globalid.sql
var oldSchema string

// A database created with the global-id schema keeps its ids: its rows
// resolve by their old numbers over REST and by their opaque ids over
// GraphQL, and new rows continue from its AUTO_INCREMENT and run.
func TestDatabaseWithGlobalIDsKeepsItsIDs(t *testing.T) {
	const oldModel, oldTask = 8589934593, 12884901889
	sh := apptest.NewShared(t, nil)
	ctx := context.Background()
	st, err := store.Open(ctx, sh.Config.Database)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dialect == "mysql" {
		// The old DDL as it was shipped, AUTO_INCREMENT offsets and all.
		for _, stmt := range strings.Split(oldSchema, ";\n") {
			if s := strings.TrimSpace(stripComments(stmt)); s != "" {
				if _, err := st.DB.ExecContext(ctx, s); err != nil {
					t.Fatalf("old schema: %v\n%s", err, s)
				}
			}
		}
	} else {
		// SQLite: ent kept the ranges in sqlite_sequence.
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		for table, start := range map[string]int64{"models": 8589934592, "tasks": 12884901888, "attempts": 4294967296, "webhook_deliveries": 21474836480, "webhook_attempts": 17179869184} {
			if _, err := st.DB.ExecContext(ctx, "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", table, start); err != nil {
				t.Fatalf("seed sqlite_sequence: %v", err)
			}
		}
	}
	insertOldRows(t, st.DB, oldModel, oldTask)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	env := sh.Start(t, app.RoleAll) // migrates the old schema
	if got := env.Task(oldTask); got.ID != oldTask || got.ModelID != oldModel || got.Status != "completed" || got.Output != "old answer" {
		t.Fatalf("old task over REST = %+v", got)
	}
	var models struct {
		Data []apptest.Model `json:"data"`
	}
	if code := env.Do("GET", "/api/v1/models", nil, &models); code != http.StatusOK || !slices.ContainsFunc(models.Data, func(m apptest.Model) bool { return m.ID == oldModel && m.Name == "old-sim" }) {
		t.Fatalf("models over REST: %d %+v, want old-sim %d among them", code, models, oldModel)
	}
	var got struct {
		Task struct {
			ID     gid
			Model  struct{ ID gid }
			Output string
		}
	}
	mustData(t, env, "", `query($id: ID!) { task(id: $id) { id model { id } output } }`, map[string]any{"id": taskGID(oldTask)}, &got)
	if got.Task.ID != taskGID(oldTask) || got.Task.Model.ID != modelGID(oldModel) || got.Task.Output != "old answer" {
		t.Fatalf("old task over GraphQL = %+v", got.Task)
	}
	var nd struct{ Node struct{ Name string } }
	mustData(t, env, "", `query($id: ID!) { node(id: $id) { ... on Model { name } } }`, map[string]any{"id": modelGID(oldModel)}, &nd)
	if nd.Node.Name != "old-sim" {
		t.Fatalf("node(old model) = %+v", nd)
	}

	// New rows continue after the old ones, and a new task runs.
	m := env.Simulator("new-sim", 1, map[string]any{"latency_ms": 1})
	if m.ID <= oldModel || m.ID >= oldModel+1<<32 {
		t.Fatalf("new model id %d, want after %d in the same range", m.ID, oldModel)
	}
	task := env.Submit(map[string]any{"model_id": oldModel, "type": "text-generation", "input": "after the upgrade"})
	if task.ID <= oldTask || task.ID >= oldTask+1<<32 {
		t.Fatalf("new task id %d, want after %d in the same range", task.ID, oldTask)
	}
	if done := env.WaitTask(task.ID, "completed", 30*time.Second); len(done.AttemptHistory) != 1 || done.AttemptHistory[0].ModelID != oldModel {
		t.Fatalf("new task = %+v", done)
	}
}

func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// insertOldRows writes a simulator model and a completed task with ids
// from the old ranges, as a database of the earlier release holds them.
func insertOldRows(t *testing.T, db *sql.DB, modelID, taskID int) {
	t.Helper()
	now := time.Now().UTC()
	if _, err := db.Exec(`INSERT INTO models (id, name, type, config, status, max_workers, created_at, updated_at) VALUES (?, 'old-sim', 'simulator', ?, 'online', 2, ?, ?)`,
		modelID, `{"latency_ms": 1}`, now, now); err != nil {
		t.Fatalf("insert old model: %v", err)
	}
	if _, err := db.Exec(`INSERT INTO tasks (id, type, input, status, output, attempts, max_retries, created_at, updated_at, finished_at, model_id) VALUES (?, 'text-generation', 'before the upgrade', 'completed', 'old answer', 1, 3, ?, ?, ?, ?)`,
		taskID, now, now, now, modelID); err != nil {
		t.Fatalf("insert old task: %v", err)
	}
}
