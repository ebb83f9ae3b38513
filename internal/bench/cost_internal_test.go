package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/mysqltest"
	"github.com/llmsched/llm-scheduler/internal/redistest"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// burn spends at least d of this process's CPU (as /proc counts it).
func burn(t *testing.T, d time.Duration) {
	t.Helper()
	start, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for {
		for range 1_000_000 {
			x++
		}
		now, err := procCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if time.Duration(now-start)*time.Microsecond >= d {
			return
		}
	}
}

// TestCostMeterReadsEachServerAndProcess: on MySQL + Redis the meter finds
// both servers' processes on this machine and reports, per task, the
// statements and commands that ran and the CPU each process spent; on the
// embedded default (no server to ask) the processes' CPU alone.
func TestCostMeterReadsEachServerAndProcess(t *testing.T) {
	ctx := context.Background()
	self := metered{"bench", os.Getpid()}
	if os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		m := newCostMeter(ctx, nil, nil, self)
		before, err := m.snap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		burn(t, 200*time.Millisecond)
		c, err := m.since(ctx, before, 10)
		if err != nil {
			t.Fatal(err)
		}
		// 200 ms over 10 tasks: 20,000 us each (and what else runs here).
		if got := c.cpu["bench"]; got < 20000 || got > 30000 {
			t.Errorf("bench CPU %.0f us per task, want about 20,000", got)
		}
		if c.sql || c.redis || len(c.kinds) != 1 {
			t.Errorf("counters read without servers: %+v", c)
		}
		return
	}

	st, err := store.Open(ctx, mysqltest.Shared(t, config.Defaults(true).Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	_, rdb, err := claimRedisDB(ctx, redistest.SharedAddr(), "", 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := releaseRedisDB(rdb); err != nil {
			t.Error(err)
		}
	})
	const table = "bench_cost_probe"
	if _, err := st.DB.ExecContext(ctx, "CREATE TABLE "+table+" (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = st.DB.ExecContext(context.Background(), "DROP TABLE "+table) })

	m := newCostMeter(ctx, st.DB, rdb, self)
	var kinds []string
	for _, p := range m.procs() {
		kinds = append(kinds, p.kind)
	}
	if strings.Join(kinds, ",") != "bench,mariadbd,redis-server" {
		t.Fatalf("kinds %v: the servers on this machine were not found", kinds)
	}
	// A process added for the scheduler's run is reported after the run's
	// own and before the servers; the meter it came from is unchanged.
	var order []string
	for _, p := range m.with("scheduler", os.Getpid()).procs() {
		order = append(order, p.kind)
	}
	if got := strings.Join(order, ","); got != "bench,scheduler,mariadbd,redis-server" || len(m.procs()) != 3 {
		t.Fatalf("with scheduler: %s (and %d processes left in the meter it came from)", got, len(m.procs()))
	}
	before, err := m.snap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 10 tasks of 300 INSERTs and 3,000 SETs each.
	for i := range 3000 {
		if _, err := st.DB.ExecContext(ctx, "INSERT INTO "+table+" (v) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		pipe := rdb.Pipeline()
		for j := range 1000 {
			pipe.Set(ctx, fmt.Sprintf("k%d", j), i, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c, err := m.since(ctx, before, 10)
	if err != nil {
		t.Fatal(err)
	}
	// The counters are the whole server's, and other test packages use the
	// same servers meanwhile: what this test ran is a lower bound.
	if c.stmts < 300 {
		t.Errorf("%.2f statements per task, want at least the 300 INSERTs", c.stmts)
	}
	if n := countOf(c.topStmts, "insert"); n < 300 {
		t.Errorf("top statements %q: insert %.2f per task, want at least 300", c.topStmts, n)
	}
	if n := countOf(c.topCmds, "set"); c.cmds < 3000 || n < 3000 {
		t.Errorf("%.2f commands per task (%s): set %.2f, want at least 3000", c.cmds, c.topCmds, n)
	}
	for _, k := range kinds {
		if c.cpu[k] <= 0 {
			t.Errorf("%s: %.0f us per task, want some", k, c.cpu[k])
		}
	}
}

// countOf reads name's figure from a "name 1.00, other 2.00" list; 0 when
// it is not there.
func countOf(list, name string) float64 {
	for part := range strings.SplitSeq(list, ", ") {
		k, v, ok := strings.Cut(part, " ")
		if ok && k == name {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}

// TestCostRowsSayWhatTheSchedulerProcessCannotLower: the report gives each
// run's CPU per task by process and, for the scheduler's run, what the
// other processes cost beside the baseline's total; the summary gives the
// medians over the reps.
func TestCostRowsSayWhatTheSchedulerProcessCannotLower(t *testing.T) {
	base := taskCost{kinds: []string{"bench", "mariadbd", "redis-server"},
		cpu: map[string]float64{"bench": 200, "mariadbd": 300, "redis-server": 100}}
	rest := taskCost{kinds: []string{"bench", "scheduler", "mariadbd", "redis-server"},
		cpu: map[string]float64{"bench": 150, "scheduler": 500, "mariadbd": 400, "redis-server": 150}}
	rep := &report{}
	costRows(rep, "", base, rest)
	var out strings.Builder
	rep.print(&out)
	for _, want := range []string{
		"bench (clients + handlers) 200, mariadbd 300, redis-server 100; total 600",
		"bench (clients) 150, scheduler 500, mariadbd 400, redis-server 150; total 1200",
		"E2E REST less the scheduler process  700 (1.17x the baseline's total)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}

	// With the scheduler inside the bench process, the bench's line says so.
	delete(rest.cpu, "scheduler")
	rest.kinds = []string{"bench", "mariadbd", "redis-server"}
	rep = &report{}
	costRows(rep, "", base, rest)
	out.Reset()
	rep.print(&out)
	if want := "bench (clients and the scheduler, in-process) 150"; !strings.Contains(out.String(), want) || strings.Contains(out.String(), "less the scheduler") {
		t.Errorf("want %q and no line less the scheduler in:\n%s", want, out.String())
	}

	figs := []figures{goodRep(), goodRep(), goodRep()}
	for i := range figs {
		figs[i].cpuBase, figs[i].cpuRest, figs[i].cpuRestOthers = 600, float64(1000+100*i), 700
	}
	rep = &report{}
	verdicts(rep, figs, true)
	out.Reset()
	rep.print(&out)
	if want := "baseline median 600 us (600-600, 3 reps), E2E REST median 1100 us (1000-1200, 3 reps), E2E REST less the scheduler process median 700 us"; !strings.Contains(out.String(), want) {
		t.Errorf("no %q in:\n%s", want, out.String())
	}
}
