package graph_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect/sql"
	"github.com/99designs/gqlgen/graphql"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// sqlRecorder keeps the SQL of the task queries that GraphQL operations
// named "Probe" run, through an ent interceptor on the process's client.
type sqlRecorder struct {
	mu   sync.Mutex
	stmt []recordedSQL
}

type recordedSQL struct {
	query string
	args  []any
}

// It is installed before the process's loops start: ent's Intercept is not
// safe beside running queries.
func recordTaskSQL(sh *apptest.Shared) *sqlRecorder {
	rec := &sqlRecorder{}
	sh.BeforeStart = func(a *app.App) {
		a.Store.Client.Intercept(ent.InterceptFunc(func(next ent.Querier) ent.Querier {
			return ent.QuerierFunc(func(ctx context.Context, q ent.Query) (ent.Value, error) {
				tq, ok := q.(*ent.TaskQuery)
				if !ok || !graphql.HasOperationContext(ctx) {
					return next.Query(ctx, q)
				}
				if op := graphql.GetOperationContext(ctx).Operation; op == nil || op.Name != "Probe" {
					return next.Query(ctx, q)
				}
				var sel *sql.Selector
				tq.Modify(func(s *sql.Selector) { sel = s })
				v, err := next.Query(ctx, q)
				if sel != nil {
					query, args := sel.Query()
					rec.mu.Lock()
					rec.stmt = append(rec.stmt, recordedSQL{query, args})
					rec.mu.Unlock()
				}
				return v, err
			})
		}))
	}
	return rec
}

// take returns and forgets what was recorded.
func (r *sqlRecorder) take() []recordedSQL {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.stmt
	r.stmt = nil
	return out
}

// isCount says whether a statement counts tasks one by one (entgql's
// totalCount), as opposed to the counts by status (a GROUP BY).
func isCount(s recordedSQL) bool {
	return strings.Contains(s.query, "COUNT(") && !strings.Contains(s.query, "GROUP BY")
}

// TestTaskConnectionAtScale: the GraphQL task list's first page must not
// sort or count the whole tasks table (it once took 3-7 s at a million
// pending tasks). Ties are broken on id in the order's direction, so the
// page query is an index read (EXPLAIN on MySQL: no filesort), pages walk
// ties correctly, totalCount is counted only when selected (from the counts
// by status when the filter is a status or nothing), and pageInfo counts
// nothing.
func TestTaskConnectionAtScale(t *testing.T) {
	sh := apptest.NewShared(t, nil)
	rec := recordTaskSQL(sh)
	env := sh.Start(t, app.RoleAll)
	m := env.Simulator("scale", 1, nil)
	const n = 3000
	all := seedFinishedTasks(t, env, m.ID, n)
	rec.take() // the set-up's statements

	// Walk three pages newest first, without totalCount: the tasks come in
	// created_at then id order, descending, and nothing is counted.
	var after *string
	for p := 0; p < 3; p++ {
		var got taskPage
		mustData(t, env, "", `query Probe($after: Cursor) { tasks(first: 20, after: $after, orderBy: [{field: CREATED_AT, direction: DESC}]) { pageInfo { hasNextPage endCursor } edges { node { id } } } }`,
			map[string]any{"after": after}, &got)
		if len(got.Tasks.Edges) != 20 || !got.Tasks.PageInfo.HasNextPage {
			t.Fatalf("page %d: %d edges, hasNextPage %v; want 20 and true", p, len(got.Tasks.Edges), got.Tasks.PageInfo.HasNextPage)
		}
		for i, e := range got.Tasks.Edges {
			if want := taskGID(all[p*20+i].ID); e.Node.ID != want {
				t.Fatalf("page %d row %d: task %v, want %v (created_at desc, id desc)", p, i, e.Node.ID, want)
			}
		}
		after = got.Tasks.PageInfo.EndCursor
		stmts := rec.take()
		var pageSQL *recordedSQL
		for i, s := range stmts {
			if isCount(s) {
				t.Fatalf("page %d without totalCount counted the tasks: %s", p, s.query)
			}
			if strings.Contains(s.query, "ORDER BY") {
				pageSQL = &stmts[i]
			}
		}
		if pageSQL == nil {
			t.Fatalf("page %d: no page query recorded in %v", p, stmts)
		}
		if !strings.Contains(pageSQL.query, "ORDER BY `tasks`.`created_at` DESC, `tasks`.`id` DESC") {
			t.Fatalf("page %d query %q does not order by created_at DESC, id DESC", p, pageSQL.query)
		}
		if p == 0 && env.App.Store.Dialect == "mysql" {
			assertIndexReadNoSort(t, env, pageSQL)
		}
	}
	assertTotalCounts(t, env, rec, m.ID, n)
}

// taskPage is a page of the tasks connection.
type taskPage struct {
	Tasks struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage bool
			EndCursor   *string
		}
		Edges []struct{ Node struct{ ID gid } }
	}
}

// seedFinishedTasks stores n finished tasks on model modelID and returns
// every task, newest first (created_at, then id, descending).
func seedFinishedTasks(t *testing.T, env *apptest.Env, modelID, n int) []*ent.Task {
	t.Helper()
	ctx := context.Background()
	db := env.App.Store.Client
	// Finished tasks (nothing for the dispatcher to do), created in
	// threes at the same microsecond so that ties cross page boundaries.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < n; i += 500 {
		bulk := make([]*ent.TaskCreate, 0, 500)
		for j := i; j < i+500; j++ {
			bulk = append(bulk, db.Task.Create().SetModelID(modelID).SetType(domain.TypeTextGeneration).
				SetPrompt(fmt.Sprint("p", j)).SetMaxRetries(0).SetStatus(domain.StatusCompleted).
				SetCreatedAt(base.Add(time.Duration(j/3)*time.Millisecond)))
		}
		if err := db.Task.CreateBulk(bulk...).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.Task.Query().All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b *ent.Task) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return b.ID - a.ID
	})
	if env.App.Store.Dialect == "mysql" {
		if _, err := env.App.Store.DB.ExecContext(ctx, "ANALYZE TABLE tasks"); err != nil {
			t.Fatal(err)
		}
	}
	return all
}

// assertIndexReadNoSort: on MySQL, the first page's plan reads the
// created_at index backwards, with no sort.
func assertIndexReadNoSort(t *testing.T, env *apptest.Env, pageSQL *recordedSQL) {
	t.Helper()
	ctx := context.Background()
	rows, err := env.App.Store.DB.QueryContext(ctx, "EXPLAIN "+pageSQL.query, pageSQL.args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		plan := map[string]string{}
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				plan[c] = string(b)
			}
		}
		if strings.Contains(plan["Extra"], "filesort") || plan["key"] != "task_created_at" {
			t.Fatalf("first page plan %v: want key task_created_at and no filesort", plan)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// assertTotalCounts: totalCount of the n tasks of model modelID, with and
// without edges, and whether the tasks were counted one by one.
func assertTotalCounts(t *testing.T, env *apptest.Env, rec *sqlRecorder, modelID, n int) {
	t.Helper()
	// totalCount, unfiltered or by status: from the counts by status, no
	// COUNT over the table; other filters count exactly; without edges the
	// count answers pageInfo too.
	for _, c := range []struct {
		name  string
		where map[string]any
		want  int
		count bool
	}{
		{"no filter", nil, n, false},
		{"status completed", map[string]any{"status": "COMPLETED"}, n, false},
		{"status pending", map[string]any{"status": "PENDING"}, 0, false},
		{"model", map[string]any{"modelID": fmt.Sprint(modelID)}, n, true},
		{"model and status", map[string]any{"modelID": fmt.Sprint(modelID), "status": "FAILED"}, 0, true},
	} {
		for _, edges := range []string{"edges { node { id } }", ""} {
			var got taskPage
			mustData(t, env, "", `query Probe($where: TaskWhereInput) { tasks(first: 20, where: $where) { totalCount pageInfo { hasNextPage } `+edges+` } }`,
				map[string]any{"where": c.where}, &got)
			if got.Tasks.TotalCount != c.want || got.Tasks.PageInfo.HasNextPage != (c.want > 20) {
				t.Errorf("%s (%q): totalCount %d hasNextPage %v, want %d, %v", c.name, edges, got.Tasks.TotalCount, got.Tasks.PageInfo.HasNextPage, c.want, c.want > 20)
			}
			counted := slices.ContainsFunc(rec.take(), isCount)
			if counted != c.count {
				t.Errorf("%s (%q): counted tasks one by one: %v, want %v", c.name, edges, counted, c.count)
			}
		}
	}
}
