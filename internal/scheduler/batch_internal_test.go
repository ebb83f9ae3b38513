package scheduler

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/loop"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// These tests drive the batched paths (batch.go) directly with batches
// built by hand, so every branch runs whatever the timing: a whole batch,
// a batch with a stale item (the item-by-item fallback), outputs that must
// land on their own rows. The concurrent end-to-end runs are in jobs/ and
// the bench.

type recDispatcher struct {
	mu       sync.Mutex
	admitted [][]int // task ids per AdmitMany call
}

func (d *recDispatcher) Admit(ctx context.Context, t *ent.Task, m *ent.Model) error {
	return d.AdmitMany(ctx, []*ent.Task{t}, m)
}

func (d *recDispatcher) AdmitMany(_ context.Context, ts []*ent.Task, _ *ent.Model) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]int, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	d.admitted = append(d.admitted, ids)
	return nil
}
func (*recDispatcher) Remove(context.Context, *ent.Task, *ent.Model) error { return nil }
func (*recDispatcher) CancelRunning(context.Context, int) error            { return nil }
func (*recDispatcher) Pump(context.Context, *ent.Model) error              { return nil }
func (*recDispatcher) QueueState(context.Context, *ent.Task, *ent.Model) (QueueState, error) {
	return QueueState{}, nil
}
func (*recDispatcher) Ping(context.Context) error { return nil }

type recBus struct {
	mu     sync.Mutex
	events []events.TaskEvent
}

func (b *recBus) PublishTask(_ context.Context, e events.TaskEvent) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = append(b.events, e)
	return nil
}

func (b *recBus) count(to domain.TaskStatus) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.events {
		if e.To == to {
			n++
		}
	}
	return n
}

type fixture struct {
	svc   *Service
	disp  *recDispatcher
	bus   *recBus
	model *ent.Model
	db    config.Database
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := config.Defaults(true)
	cfg.Database = testDatabase(t, cfg.Database)
	ctx := context.Background()
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{disp: &recDispatcher{}, bus: &recBus{}, db: cfg.Database}
	f.svc = New(Options{DB: st.Client, MultiDB: st.Multi, Dispatcher: f.disp, Bus: f.bus, Config: &cfg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	workers := 10
	f.model, err = f.svc.CreateModel(ctx, NewModel{Name: "m", Type: "simulator", MaxWorkers: &workers,
		Config: map[string]any{"latency_ms": 0}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) tasks(t *testing.T, n int) []*ent.Task {
	t.Helper()
	ts := make([]*ent.Task, n)
	for i := range ts {
		var err error
		ts[i], err = f.svc.CreateTask(context.Background(), NewTask{ModelID: f.model.ID, Type: "text-generation", Input: "hi"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return ts
}

func TestInsertTasksOneBatchAdmitsPerModel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reqs := make([]createReq, 3)
	for i := range reqs {
		v, err := f.svc.validateTask(NewTask{ModelID: f.model.ID, Type: "text-generation", Input: "x"}, "")
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = createReq{v: v, m: f.model}
	}
	res := f.svc.insertTasks(ctx, reqs)
	seen := map[int]bool{}
	for i, r := range res {
		if r.err != nil || r.out == nil || r.out.Status != domain.StatusPending {
			t.Fatalf("item %d: %+v", i, r)
		}
		if seen[r.out.ID] {
			t.Fatalf("id %d given twice", r.out.ID)
		}
		seen[r.out.ID] = true
		if got, err := f.svc.m.db.Task.Get(ctx, r.out.ID); err != nil || got.Prompt != "x" {
			t.Fatalf("stored task %d: %v %v", r.out.ID, got, err)
		}
	}
	if len(f.disp.admitted) != 1 || len(f.disp.admitted[0]) != 3 {
		t.Fatalf("admitted %v, want one call with the 3 tasks", f.disp.admitted)
	}
	if n := f.bus.count(domain.StatusPending); n != 3 {
		t.Fatalf("%d created events, want 3", n)
	}
}

func TestStartTasksWholeBatch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ts := f.tasks(t, 4)
	reqs := make([]startReq, len(ts))
	for i, tk := range ts {
		reqs[i] = startReq{t: tk, modelID: f.model.ID, worker: "w"}
	}
	res := f.svc.startTasks(ctx, reqs)
	atts := map[int]bool{}
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("item %d: %v", i, r.err)
		}
		if r.out.running.Status != domain.StatusRunning || r.out.running.Attempts != 1 || r.out.att.TaskID != ts[i].ID || r.out.att.Number != 1 {
			t.Fatalf("item %d: running %+v attempt %+v", i, r.out.running, r.out.att)
		}
		atts[r.out.att.ID] = true
		got, _ := f.svc.m.db.Task.Get(ctx, ts[i].ID)
		if got.Status != domain.StatusRunning || got.Attempts != 1 || got.StartedAt == nil {
			t.Fatalf("stored task %d: %s attempts %d", got.ID, got.Status, got.Attempts)
		}
		a, err := f.svc.m.db.Attempt.Get(ctx, r.out.att.ID)
		if err != nil || a.TaskID != ts[i].ID || a.Status != domain.AttemptRunning || a.Worker != "w" {
			t.Fatalf("attempt of task %d: %+v %v", ts[i].ID, a, err)
		}
	}
	if len(atts) != 4 {
		t.Fatalf("attempt ids %v, want 4 distinct", atts)
	}
	if n := f.bus.count(domain.StatusRunning); n != 4 {
		t.Fatalf("%d running events, want 4", n)
	}
}

// A stale item (its task changed since the worker read it) must not stop
// the others, and must itself get CONFLICT with the task left alone.
func TestStartTasksStaleItemFallsBackItemByItem(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ts := f.tasks(t, 3)
	stale := *ts[1]
	if _, err := f.svc.CancelTask(ctx, stale.ID); err != nil {
		t.Fatal(err)
	}
	// The same task twice in one batch (a duplicate delivery): one wins.
	reqs := []startReq{
		{t: ts[0], modelID: f.model.ID, worker: "w"},
		{t: &stale, modelID: f.model.ID, worker: "w"},
		{t: ts[2], modelID: f.model.ID, worker: "w"},
		{t: ts[2], modelID: f.model.ID, worker: "w2"},
	}
	res := f.svc.startTasks(ctx, reqs)
	if res[0].err != nil || res[2].err != nil {
		t.Fatalf("fresh items failed: %v / %v", res[0].err, res[2].err)
	}
	if CodeOf(res[1].err) != CodeConflict {
		t.Fatalf("stale item: %v, want CONFLICT", res[1].err)
	}
	if CodeOf(res[3].err) != CodeConflict {
		t.Fatalf("duplicate item: %v, want CONFLICT", res[3].err)
	}
	if got, _ := f.svc.m.db.Task.Get(ctx, stale.ID); got.Status != domain.StatusCancelled {
		t.Fatalf("stale task is %s, want cancelled", got.Status)
	}
	if n, _ := f.svc.m.db.Attempt.Query().Where(attempt.TaskID(ts[2].ID)).Count(ctx); n != 1 {
		t.Fatalf("task %d has %d attempts, want 1", ts[2].ID, n)
	}
}

func startAll(t *testing.T, f *fixture, ts []*ent.Task) []started {
	t.Helper()
	out := make([]started, len(ts))
	for i, tk := range ts {
		running, att, err := f.svc.StartAttempt(context.Background(), tk, f.model.ID, "w")
		if err != nil {
			t.Fatal(err)
		}
		out[i] = started{running: running, att: att}
	}
	return out
}

func TestCompleteTasksEachRowGetsItsOwnOutput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := startAll(t, f, f.tasks(t, 3))
	outs := []Outcome{{Output: "alpha", PromptTokens: 1, CompletionTokens: 2}, {Output: "beta's \"quoted\"", PromptTokens: 3, CompletionTokens: 4}, {Output: "", PromptTokens: 0, CompletionTokens: 0}}
	reqs := make([]completeReq, 3)
	for i := range reqs {
		reqs[i] = completeReq{t: st[i].running, a: st[i].att, o: outs[i]}
	}
	for i, r := range f.svc.completeTasks(ctx, reqs) {
		if r.err != nil {
			t.Fatalf("item %d: %v", i, r.err)
		}
	}
	for i, s := range st {
		got, _ := f.svc.m.db.Task.Get(ctx, s.running.ID)
		o := outs[i]
		if got.Status != domain.StatusCompleted || got.Output != o.Output || got.FinishedAt == nil ||
			got.PromptTokens != o.PromptTokens || got.CompletionTokens != o.CompletionTokens ||
			got.TotalTokens != o.PromptTokens+o.CompletionTokens {
			t.Fatalf("task %d: %s %q tokens %d/%d/%d, want %+v", got.ID, got.Status, got.Output,
				got.PromptTokens, got.CompletionTokens, got.TotalTokens, o)
		}
		a, _ := f.svc.m.db.Attempt.Get(ctx, s.att.ID)
		if a.Status != domain.AttemptSucceeded || a.PromptTokens != o.PromptTokens || a.CompletionTokens != o.CompletionTokens || a.FinishedAt == nil {
			t.Fatalf("attempt %d: %+v, want succeeded with %+v", a.ID, a, o)
		}
	}
	if n := f.bus.count(domain.StatusCompleted); n != 3 {
		t.Fatalf("%d completed events, want 3", n)
	}
}

// A completion repeated after its first write committed (the answer was
// lost) succeeds without a second event; one for a task cancelled meanwhile
// gets CONFLICT and its attempt is recorded as lost.
func TestCompleteTasksRetriedAndStaleItems(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := startAll(t, f, f.tasks(t, 3))
	if err := f.svc.CompleteAttempt(ctx, st[0].running, st[0].att, Outcome{Output: "first"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.CancelTask(ctx, st[1].running.ID); err != nil {
		t.Fatal(err)
	}
	reqs := []completeReq{
		{t: st[0].running, a: st[0].att, o: Outcome{Output: "first"}},
		{t: st[1].running, a: st[1].att, o: Outcome{Output: "late"}},
		{t: st[2].running, a: st[2].att, o: Outcome{Output: "third"}},
	}
	res := f.svc.completeTasks(ctx, reqs)
	if res[0].err != nil {
		t.Fatalf("retried completion: %v", res[0].err)
	}
	if CodeOf(res[1].err) != CodeConflict {
		t.Fatalf("completion of a cancelled task: %v, want CONFLICT", res[1].err)
	}
	if res[2].err != nil {
		t.Fatalf("fresh completion: %v", res[2].err)
	}
	if got, _ := f.svc.m.db.Task.Get(ctx, st[2].running.ID); got.Output != "third" || got.Status != domain.StatusCompleted {
		t.Fatalf("third task: %s %q", got.Status, got.Output)
	}
	if got, _ := f.svc.m.db.Task.Get(ctx, st[1].running.ID); got.Status != domain.StatusCancelled || got.Output != "" {
		t.Fatalf("cancelled task was overwritten: %s %q", got.Status, got.Output)
	}
	if a, _ := f.svc.m.db.Attempt.Get(ctx, st[1].att.ID); a.Status != domain.AttemptLost {
		t.Fatalf("attempt of the cancelled task is %s, want lost", a.Status)
	}
	if n := f.bus.count(domain.StatusCompleted); n != 2 {
		t.Fatalf("%d completed events, want 2 (no repeat for the retried write)", n)
	}
}

func TestGroupIdleCallFlushesAloneAtOnce(t *testing.T) {
	var sizes []int
	var mu sync.Mutex
	g := newGroup(newBackground(), 2, 10, func(_ context.Context, ins []int) []result[int] {
		mu.Lock()
		sizes = append(sizes, len(ins))
		mu.Unlock()
		res := make([]result[int], len(ins))
		for i, v := range ins {
			res[i].out = v * 2
		}
		return res
	})
	for i := range 3 {
		if got, err := g.do(context.Background(), i); err != nil || got != 2*i {
			t.Fatalf("do(%d) = %d, %v", i, got, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 3 || sizes[0] != 1 || sizes[1] != 1 || sizes[2] != 1 {
		t.Fatalf("flush sizes %v, want three flushes of one", sizes)
	}
}

// While every lane is busy, calls queue and go together in the next flush,
// each getting its own result.
func TestGroupBatchesCallsWhileLanesAreBusy(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	var first atomic.Bool
	g := newGroup(newBackground(), 1, 100, func(_ context.Context, ins []int) []result[int] {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		mu.Lock()
		sizes = append(sizes, len(ins))
		mu.Unlock()
		res := make([]result[int], len(ins))
		for i, v := range ins {
			res[i].out = v + 1000
		}
		return res
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		if got, _ := g.do(context.Background(), -1); got != 999 {
			t.Errorf("leader got %d", got)
		}
	})
	<-entered
	const n = 20
	for i := range n {
		wg.Go(func() {
			if got, err := g.do(context.Background(), i); err != nil || got != i+1000 {
				t.Errorf("do(%d) = %d, %v", i, got, err)
			}
		})
	}
	// Every call is queued before the lane frees up.
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		queued := len(g.waiting)
		g.mu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls queued", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != n {
		t.Fatalf("flush sizes %v, want [1 %d]", sizes, n)
	}
}

func fitsAll(int) bool { return true }

// A count past its TTL answers at once (stale) while one background read
// refreshes it; past backlogStale, the caller reads it afresh.
func TestBacklogCountRefreshesInTheBackground(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.tasks(t, 2)
	b := f.svc.backlog
	key := f.model.ID
	if n, err := b.pending(ctx, key, fitsAll); err != nil || n != 2 {
		t.Fatalf("first count = %d, %v; want 2", n, err)
	}
	f.tasks(t, 3)
	// As if the 3 had been accepted by another process after a read of 2.
	b.mu.Lock()
	b.m[key] = &backlogCount{n: 2, at: time.Now().Add(-time.Second)}
	b.mu.Unlock()
	if n, _ := b.pending(ctx, key, fitsAll); n != 2 {
		t.Fatalf("stale count = %d, want the cached 2 at once", n)
	}
	waitCount(t, f.svc, key, 5)
	b.mu.Lock()
	b.m[key].at = time.Now().Add(-2 * backlogStale)
	b.m[key].n = 99
	b.mu.Unlock()
	if n, _ := b.pending(ctx, key, fitsAll); n != 5 {
		t.Fatalf("count past backlogStale = %d, want 5 read afresh", n)
	}
	// A stale count that would refuse is read afresh before refusing.
	b.mu.Lock()
	b.m[key] = &backlogCount{n: 99, at: time.Now().Add(-time.Second)}
	b.mu.Unlock()
	if n, _ := b.pending(ctx, key, func(n int) bool { return n < 10 }); n != 5 {
		t.Fatalf("stale full count = %d, want 5 read afresh", n)
	}
}

// A costly count (a large backlog) that lets submissions in is reused for
// fifty times what it took before a background refresh, and stays usable
// for 150 times: the database spends at most about a fiftieth of its time
// counting however fast tasks arrive. A refusal needs a count within ten
// times its cost, else it is read again first.
func TestCostlyBacklogCountIsReusedLonger(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.tasks(t, 2)
	b := f.svc.backlog
	key := f.model.ID
	set := func(n int, age time.Duration) {
		b.mu.Lock()
		b.m[key] = &backlogCount{n: n, at: time.Now().Add(-age), took: 200 * time.Millisecond}
		b.mu.Unlock()
	}
	// A count that took 200 ms, read 8 s ago: past backlogTTL and ten
	// times its cost, within fifty times. It answers, and no refresh
	// starts.
	set(7, 8*time.Second)
	if n, _ := b.pending(ctx, key, fitsAll); n != 7 {
		t.Fatalf("costly count within its refresh time = %d, want the cached 7", n)
	}
	b.mu.Lock()
	reading := b.m[key].reading
	b.mu.Unlock()
	if reading {
		t.Fatal("a costly count within fifty times its cost started a refresh")
	}
	// Read 35 s ago: past 150 times its cost (30 s), so it is read afresh.
	set(7, 35*time.Second)
	if n, _ := b.pending(ctx, key, fitsAll); n != 2 {
		t.Fatalf("costly count past 150 times its cost = %d, want 2 read afresh", n)
	}
	// Read 12 s ago: past fifty times its cost, not past 150 times: it
	// answers at once and one refresh brings the true 2.
	set(7, 12*time.Second)
	if n, _ := b.pending(ctx, key, fitsAll); n != 7 {
		t.Fatalf("costly count past its refresh time = %d, want the cached 7 at once", n)
	}
	waitCount(t, f.svc, key, 2)
	// A refusal: on a count within ten times its cost (1.5 s) it stands;
	// on an older one (3 s) the count is read again first.
	full := func(n int) bool { return n < 10 }
	set(99, 1500*time.Millisecond)
	if n, _ := b.pending(ctx, key, full); n != 99 {
		t.Fatalf("costly full count within ten times its cost = %d, want the cached 99 (refuse on it)", n)
	}
	set(99, 3*time.Second)
	if n, _ := b.pending(ctx, key, full); n != 2 {
		t.Fatalf("costly full count past ten times its cost = %d, want 2 read afresh before refusing", n)
	}
}

// waitCount waits for the background refresh to bring key's pending count
// to want.
func waitCount(t *testing.T, svc *Service, key, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _ := svc.backlog.pending(context.Background(), key, fitsAll)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("count never refreshed to %d (last %d)", want, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A costly count is refreshed in slices: statements that each read at most
// countSlice tasks of one model, with a rest as long as each took, so the
// database never counts a large backlog in one go. The slices add up to
// the true count (tasks of other models and other statuses apart), and
// what this process accepts during the count is carried over.
func TestCostlyBacklogCountIsRefreshedInSlices(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := countSlice
	countSlice = 3
	t.Cleanup(func() { countSlice = old })
	workers := 1
	other, err := f.svc.CreateModel(ctx, NewModel{Name: "other", Type: "simulator", MaxWorkers: &workers,
		Config: map[string]any{"latency_ms": 0}})
	if err != nil {
		t.Fatal(err)
	}
	// A model with no pending task is not counted at all.
	if _, err := f.svc.CreateModel(ctx, NewModel{Name: "idle", Type: "simulator", MaxWorkers: &workers,
		Config: map[string]any{"latency_ms": 0}}); err != nil {
		t.Fatal(err)
	}
	ts := f.tasks(t, 8) // 8 pending on f.model: slices of 3, 3, then 2
	for range 2 {       // 2 pending on the other model: one short slice
		if _, err := f.svc.CreateTask(ctx, NewTask{ModelID: other.ID, Type: "text-generation", Input: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	// One of f.model's tasks is no longer pending.
	if _, err := f.svc.CancelTask(ctx, ts[4].ID); err != nil {
		t.Fatal(err)
	}
	b := f.svc.backlog
	set := func(key, n int) *backlogCount {
		c := &backlogCount{n: n, at: time.Now().Add(-2 * time.Second), took: sliceAbove, added: 5}
		b.mu.Lock()
		b.m[key] = c
		b.mu.Unlock()
		return c
	}
	for _, tc := range []struct {
		name           string
		key, want      int
		wantStatements int
	}{
		// 7 pending: a full slice (3), a full slice (3), then a short
		// one (1: a probe and a COUNT).
		{name: "one model", key: f.model.ID, want: 7, wantStatements: 4},
		// Both models with pending tasks (not the idle one): 7 + 2,
		// the second model in one short slice (a probe and a COUNT).
		{name: "in total", key: 0, want: 9, wantStatements: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A count that took sliceAbove, read 2 s ago: past its
			// refresh time (1 s), within stale (5 s); it answers and
			// the refresh runs sliced.
			c := set(tc.key, 100)
			var rested time.Duration
			b.rest = func(ctx context.Context, d time.Duration) error {
				b.mu.Lock()
				rested += d
				b.mu.Unlock()
				return loop.Sleep(ctx, d)
			}
			if n, _ := b.pending(ctx, tc.key, fitsAll); n != 105 {
				t.Fatalf("count past its refresh time = %d, want the cached 105 at once", n)
			}
			waitCount(t, f.svc, tc.key, tc.want)
			b.mu.Lock()
			got, rested := *b.m[tc.key], rested
			b.mu.Unlock()
			if got.statements != tc.wantStatements {
				t.Errorf("refresh took %d statements, want %d (slices of %d)", got.statements, tc.wantStatements, countSlice)
			}
			// It rests as long as its statements took.
			if rested != got.took || rested == 0 {
				t.Errorf("the refresh's statements took %s and it rested %s; want as long", got.took, rested)
			}
			if c == b.m[tc.key] {
				t.Fatal("the refresh did not replace the count")
			}
		})
	}

	// Tasks this process accepted while a sliced count ran are carried
	// over, not lost: 4 accepted during its first rest.
	b.mu.Lock()
	b.m[0] = &backlogCount{n: 0, at: time.Now().Add(-time.Minute), took: sliceAbove, added: 5}
	b.mu.Unlock()
	var once sync.Once
	b.rest = func(ctx context.Context, d time.Duration) error {
		once.Do(func() { b.reserve(f.model.ID, 4) })
		return loop.Sleep(ctx, d)
	}
	if n, err := b.readSliced(ctx, 0); err != nil || n != 9+4 {
		t.Fatalf("sliced count with 4 accepted meanwhile = %d (err %v), want 13 (9 counted, 4 carried over)", n, err)
	}
}
