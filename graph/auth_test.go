package graph_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// TestRoles applies the REST roles to GraphQL, over HTTP and over a
// websocket authenticated in connection_init.
func TestRoles(t *testing.T) {
	on := true
	env := apptest.New(t, func(c *config.Config) { c.Auth.Enabled = &on })
	admin, _ := addKey(t, env, domain.RoleAdmin)
	keys := map[domain.Role]string{domain.RoleAdmin: admin}
	for _, r := range []domain.Role{domain.RoleOperator, domain.RoleSubmitter, domain.RoleViewer} {
		keys[r], _ = addKey(t, env, r)
	}
	m := createModel(t, env, admin, map[string]any{"name": "sim", "type": "SIMULATOR", "status": "OFFLINE", "config": map[string]any{}})
	adminTask := createTask(t, env, admin, map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "admin's"})
	assertRolePermissions(t, env, keys, m.ID)

	// No key, a bad key: UNAUTHENTICATED over HTTP (health stays open), and
	// the websocket is refused at connection_init.
	wantCode(t, env, "", `{ tasks { totalCount } }`, nil, "UNAUTHENTICATED")
	wantCode(t, env, "not-a-key", `{ tasks { totalCount } }`, nil, "UNAUTHENTICATED")
	mustData(t, env, "", `{ systemHealth { status } }`, nil, nil)
	for _, init := range []map[string]any{nil, {"authToken": "not-a-key"}} {
		if _, err := dialWS(t, env, protoTransport, init); err == nil {
			t.Errorf("websocket with init %v was accepted", init)
		}
	}
	// {"authToken": ...} works too.
	ws := mustDialWS(t, env, protoTransport, map[string]any{"authToken": keys[domain.RoleViewer]})
	ws.subscribe("v", `{ dashboardStats { totalTasks } }`, nil)
	if kind, r := ws.next(10 * time.Second); kind != "next" || len(r.Errors) > 0 {
		t.Fatalf("authToken: %s %+v", kind, r.Errors)
	}

	// A submitter sees only their own tasks: list, get, node, events.
	assertSubmitterSeesOwnTasks(t, env, admin, keys[domain.RoleSubmitter], m.ID, adminTask.ID)
}

// assertRolePermissions: each role's key may read, submit, operate, set a
// model's status and administer as the REST roles allow, over HTTP and
// over a websocket, and gets FORBIDDEN for the rest.
func assertRolePermissions(t *testing.T, env *apptest.Env, keys map[domain.Role]string, modelID gid) {
	t.Helper()
	admin := keys[domain.RoleAdmin]
	n := 0
	op := func(perm string) (string, map[string]any) {
		n++
		switch perm {
		case "read":
			return `{ dashboardStats { totalTasks } }`, nil
		case "submit":
			return createTaskOp, map[string]any{"in": map[string]any{"modelID": modelID, "type": "TEXT_GENERATION", "input": "x"}}
		case "operate":
			task := createTask(t, env, admin, map[string]any{"modelID": modelID, "type": "TEXT_GENERATION", "input": "to cancel"})
			return `mutation($id: ID!) { cancelTask(id: $id) { id } }`, map[string]any{"id": task.ID}
		case "model_status":
			return setStatusOp, map[string]any{"id": modelID, "s": "OFFLINE"}
		case "admin":
			return createModelOp, map[string]any{"in": map[string]any{"name": fmt.Sprint("m", n), "type": "SIMULATOR"}}
		}
		panic(perm)
	}
	allowed := map[domain.Role][]string{
		domain.RoleAdmin:     {"read", "submit", "operate", "model_status", "admin"},
		domain.RoleOperator:  {"read", "submit", "operate", "model_status"},
		domain.RoleSubmitter: {"read", "submit"},
		domain.RoleViewer:    {"read"},
	}
	perms := []string{"read", "submit", "operate", "model_status", "admin"}
	for role, key := range keys {
		ws := mustDialWS(t, env, protoTransport, map[string]any{"Authorization": "Bearer " + key})
		for _, perm := range perms {
			want := ""
			if !strings.Contains(strings.Join(allowed[role], " "), perm) {
				want = "FORBIDDEN"
			}
			q, vars := op(perm)
			r := post(t, env, key, q, vars)
			if got := firstCode(r); got != want {
				t.Errorf("HTTP %s %s: code %q, want %q (%+v)", role, perm, got, want, r.Errors)
			}
			q, vars = op(perm)
			id := fmt.Sprint(role, perm)
			ws.subscribe(id, q, vars)
			kind, wr := ws.next(10 * time.Second)
			if got := firstCode(wr); got != want || (want == "" && kind != "next") {
				t.Errorf("websocket %s %s: %s code %q, want %q (%+v)", role, perm, kind, got, want, wr.Errors)
			}
			if kind == "next" {
				if kind, _ := ws.next(10 * time.Second); kind != "complete" {
					t.Errorf("websocket %s %s: want complete, got %s", role, perm, kind)
				}
			}
		}
	}
}

// assertSubmitterSeesOwnTasks: the submitter's task list, task, node and
// taskEvents leave out the admin's task adminTask.
func assertSubmitterSeesOwnTasks(t *testing.T, env *apptest.Env, admin, sub string, modelID, adminTask gid) {
	t.Helper()
	own := createTask(t, env, sub, map[string]any{"modelID": modelID, "type": "TEXT_GENERATION", "input": "mine"})
	var list struct {
		Tasks struct {
			Edges []struct{ Node taskView }
		}
	}
	mustData(t, env, sub, `{ tasks(first: 100) { edges { node { id } } } }`, nil, &list)
	for _, e := range list.Tasks.Edges {
		if e.Node.ID == adminTask {
			t.Fatalf("submitter sees the admin's task %v", adminTask)
		}
	}
	if len(list.Tasks.Edges) < 2 { // the one above and the one the permission loop created
		t.Fatalf("submitter sees %d tasks, want their own", len(list.Tasks.Edges))
	}
	wantCode(t, env, sub, `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": adminTask}, "NOT_FOUND")
	wantCode(t, env, sub, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": adminTask}, "NOT_FOUND")
	mustData(t, env, sub, `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": own.ID}, nil)

	sws := mustDialWS(t, env, protoTransport, map[string]any{"Authorization": "Bearer " + sub})
	sws.subscribe("e", `subscription { taskEvents { taskID } }`, nil)
	sws.subscribe("q", `{ systemHealth { status } }`, nil)
	for done := false; !done; {
		if kind, _ := sws.next(10 * time.Second); kind == "complete" {
			done = true
		}
	}
	mustData(t, env, admin, `mutation($id: ID!) { cancelTask(id: $id) { id } }`, map[string]any{"id": adminTask}, nil)
	mustData(t, env, admin, `mutation($id: ID!) { cancelTask(id: $id) { id } }`, map[string]any{"id": own.ID}, nil)
	var e struct{ TaskEvents struct{ TaskID gid } }
	sws.nextData(10*time.Second, &e)
	if e.TaskEvents.TaskID != own.ID {
		t.Fatalf("submitter got an event of task %v, want only their own %v", e.TaskEvents.TaskID, own.ID)
	}
}

func firstCode(r gqlResponse) string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].code()
}
