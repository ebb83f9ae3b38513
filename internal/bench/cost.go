package bench

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A costMeter reads what a run cost the machine, per task: the CPU time
// (/proc utime + stime) of each process taking part, the statements the SQL
// server ran (SHOW GLOBAL STATUS) and the commands Redis ran (INFO
// commandstats). Both servers' counters are the whole server's: on a
// shared server other clients count too.
//
// On a machine whose cores are all busy during a run, as the end-to-end
// phases keep them, the rate is the cores' time over the CPU a task costs
// in all, so the cost per task says where a ratio against the baseline
// comes from.
type costMeter struct {
	// own are the processes of the run (the bench, the scheduler), servers
	// those of the servers found on this machine; reported in that order.
	own, servers []metered
	db           *sql.DB               // nil: no SQL server to ask
	rdb          redis.UniversalClient // nil: no Redis to ask
}

// metered is a process whose CPU a meter reads, and what the report calls it.
type metered struct {
	kind string
	pid  int
}

// costSnap is a meter's reading at one moment.
type costSnap struct {
	cpu         map[string]int64 // µs by kind
	stmts, cmds map[string]int64
}

// taskCost is the difference of two readings over n tasks.
type taskCost struct {
	kinds []string
	// cpu is µs per task by kind.
	cpu               map[string]float64
	stmts, cmds       float64
	topStmts, topCmds string
	sql, redis        bool // whether the counters were read
}

// total is the CPU µs of every process, per task.
func (c taskCost) total() float64 {
	t := 0.0
	for _, v := range c.cpu {
		t += v
	}
	return t
}

// newCostMeter meters the processes own and, where it runs on this
// machine, the SQL server behind db (kind "mariadbd") and the Redis behind
// rdb (kind "redis-server"). db or rdb nil: that server's counters are not
// read.
func newCostMeter(ctx context.Context, db *sql.DB, rdb redis.UniversalClient, own ...metered) *costMeter {
	m := &costMeter{own: own, db: db, rdb: rdb}
	if db != nil {
		if pid := mysqlPID(ctx, db); pid > 0 {
			m.servers = append(m.servers, metered{"mariadbd", pid})
		}
	}
	if rdb != nil {
		if pid := redisPID(ctx, rdb); pid > 0 {
			m.servers = append(m.servers, metered{"redis-server", pid})
		}
	}
	return m
}

// with is the meter with one more process of the run.
func (m *costMeter) with(kind string, pid int) *costMeter {
	c := *m
	c.own = append(slices.Clone(m.own), metered{kind, pid})
	return &c
}

// procs are the metered processes in report order.
func (m *costMeter) procs() []metered { return slices.Concat(m.own, m.servers) }

func (m *costMeter) snap(ctx context.Context) (costSnap, error) {
	var s costSnap
	var err error
	pids := map[string][]int{}
	for _, p := range m.procs() {
		pids[p.kind] = append(pids[p.kind], p.pid)
	}
	if s.cpu, err = cpuOf(pids); err != nil {
		return s, err
	}
	if m.db != nil {
		if s.stmts, err = mysqlStatus(ctx, m.db); err != nil {
			return s, err
		}
	}
	if m.rdb != nil {
		info, err := m.rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			return s, fmt.Errorf("redis info commandstats: %w", err)
		}
		s.cmds = map[string]int64{}
		addCommandStats(s.cmds, info)
	}
	return s, nil
}

// since is the cost per task of n tasks run since before.
func (m *costMeter) since(ctx context.Context, before costSnap, n int) (taskCost, error) {
	after, err := m.snap(ctx)
	if err != nil {
		return taskCost{}, err
	}
	if n <= 0 {
		return taskCost{}, fmt.Errorf("cost of %d tasks", n)
	}
	c := taskCost{cpu: map[string]float64{}, sql: m.db != nil, redis: m.rdb != nil}
	for _, p := range m.procs() {
		c.kinds = append(c.kinds, p.kind)
	}
	for k, v := range after.cpu {
		c.cpu[k] = float64(v-before.cpu[k]) / float64(n)
	}
	if c.sql {
		// Questions counts every statement a client sent; the Com_*
		// counters say which.
		c.stmts = float64(after.stmts["Questions"]-before.stmts["Questions"]) / float64(n)
		_, c.topStmts = perTask(before.stmts, after.stmts, float64(n), "Com_", 6)
	}
	if c.redis {
		c.cmds, c.topCmds = perTask(before.cmds, after.cmds, float64(n), "", 8)
	}
	return c, nil
}

// others is the CPU µs per task of every process but the scheduler's,
// and whether the scheduler ran in a process of its own.
func (c taskCost) others() (float64, bool) {
	s, ok := c.cpu["scheduler"]
	return c.total() - s, ok
}

// cpuLine is "kind 123, kind 45; total 168" (µs per task), with names
// renaming kinds for the report.
func (c taskCost) cpuLine(names map[string]string) string {
	var parts []string
	for _, k := range c.kinds {
		name := k
		if n, ok := names[k]; ok {
			name = n
		}
		parts = append(parts, fmt.Sprintf("%s %.0f", name, c.cpu[k]))
	}
	return fmt.Sprintf("%s; total %.0f", strings.Join(parts, ", "), c.total())
}

// costRows reports the cost per task of the baseline and of the
// scheduler's E2E REST run beside it, and what the scheduler's run cost
// the processes other than the scheduler: the part no change to the
// scheduler's own code can lower below.
func costRows(rep *report, label string, base, rest taskCost) {
	phase := label + "cost per task"
	rep.row(phase, "CPU us, baseline", base.cpuLine(map[string]string{"bench": "bench (clients + handlers)"}))
	others, child := rest.others()
	bench := "bench (clients)"
	if !child {
		bench = "bench (clients and the scheduler, in-process)"
	}
	rep.row(phase, "CPU us, E2E REST", rest.cpuLine(map[string]string{"bench": bench}))
	if child {
		rep.row(phase, "CPU us, E2E REST less the scheduler process",
			fmt.Sprintf("%.0f (%.2fx the baseline's total)", others, others/base.total()))
	}
	if base.sql && rest.sql {
		rep.row(phase, "SQL statements (whole server), baseline", fmt.Sprintf("%.2f (%s)", base.stmts, base.topStmts))
		rep.row(phase, "SQL statements (whole server), E2E REST", fmt.Sprintf("%.2f (%s)", rest.stmts, rest.topStmts))
	}
	if base.redis && rest.redis {
		rep.row(phase, "Redis commands (whole server), baseline", fmt.Sprintf("%.2f (%s)", base.cmds, base.topCmds))
		rep.row(phase, "Redis commands (whole server), E2E REST", fmt.Sprintf("%.2f (%s)", rest.cmds, rest.topCmds))
	}
}

// mysqlStatus reads the server's statement counters: Questions and Com_*.
func mysqlStatus(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name = 'Questions' OR Variable_name LIKE 'Com\\_%'")
	if err != nil {
		return nil, fmt.Errorf("read mysql status: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	// The bench's own SHOW STATUS is not the deployment's.
	delete(out, "Com_show_status")
	return out, rows.Err()
}

// addCommandStats adds the calls of INFO commandstats' answer to out, by
// command; the bench's own INFO calls are left out.
func addCommandStats(out map[string]int64, info string) {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "cmdstat_"), ":calls=")
		if !ok || name == "info" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		if n, err := strconv.ParseInt(calls, 10, 64); err == nil {
			out[name] += n
		}
	}
}

// mysqlPID is the SQL server's process id when it runs on this machine
// (its pid file is readable here and names a mariadbd or mysqld), else 0.
func mysqlPID(ctx context.Context, db *sql.DB) int {
	var file string
	if err := db.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&file); err != nil {
		return 0
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || !commIs(pid, "mariadbd", "mysqld") {
		return 0
	}
	return pid
}

// redisPID is the Redis server's process id when it runs on this machine
// (INFO server's process_id names a redis-server here), else 0.
func redisPID(ctx context.Context, rdb redis.UniversalClient) int {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return 0
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil || !commIs(pid, "redis-server") {
				return 0
			}
			return pid
		}
	}
	return 0
}

// commIs reports whether process pid's command name is one of names.
func commIs(pid int, names ...string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && slices.Contains(names, strings.TrimSpace(string(raw)))
}
