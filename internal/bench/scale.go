package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/go-sql-driver/mysql" // the private MariaDB
	"github.com/prometheus/procfs"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/mysqltest"
	"github.com/llmsched/llm-scheduler/internal/redistest"
)

// The scaling mode (--scale, or --workers N --apis M): the scheduler as a
// deployment of separate processes, this binary started as `serve --role
// api` and `serve --role worker`, on a MariaDB and a Redis (single server,
// or a 3-master Redis Cluster with replicas) that the bench starts for
// itself, so that the servers' counters and CPU are the deployment's
// alone on a shared machine. For each shape it measures completed tasks/s
// (the load generator of the end-to-end phase: submitters over REST,
// completions seen on the event bus) and what one task costs: Redis
// commands (INFO commandstats on every master), MySQL statements (SHOW
// GLOBAL STATUS Questions and Com_*), and CPU time of each kind of process
// (/proc/<pid>/stat: api, worker, mariadbd, redis-server, the bench
// itself). docs/scaling.md turns the costs into what N cores carry.

// scaleShape is one point of the curve.
type scaleShape struct{ workers, apis int }

// scaleRow is one measured point.
type scaleRow struct {
	redis    string
	shape    scaleShape
	res      e2eResult
	redisCmd float64
	topCmds  string
	mysqlQ   float64
	topStmts string
	// cpu is CPU µs per task by process kind.
	cpu            map[string]float64
	loadBefore     string
	loadAfter      string
	failed, undeco int64
}

// scaleKinds are the process kinds CPU is reported for, in order.
var scaleKinds = []string{"api", "worker", "mariadbd", "redis", "bench"}

// runScale runs the scaling mode and prints its table.
func runScale(ctx context.Context, o Options, out io.Writer, progress func(string, ...any)) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	var shapes []scaleShape
	if o.Scale {
		for _, a := range []int{1, 2} {
			for _, w := range []int{1, 2, 4} {
				shapes = append(shapes, scaleShape{workers: w, apis: a})
			}
		}
	} else {
		shapes = []scaleShape{{workers: max(o.Workers, 1), apis: max(o.APIs, 1)}}
	}
	var kinds []string
	switch o.ScaleRedis {
	case "single", "cluster":
		kinds = []string{o.ScaleRedis}
	case "both":
		kinds = []string{"single", "cluster"}
	default:
		return fmt.Errorf("--scale-redis must be single, cluster or both, got %q", o.ScaleRedis)
	}
	dir, err := os.MkdirTemp("", "llmsched-scale-")
	if err != nil {
		return err
	}
	defer removeTemp(dir, progress)
	progress("scale: starting a private MariaDB under %s", dir)
	db, err := startMariaDB(ctx, filepath.Join(dir, "mariadb"))
	if err != nil {
		return err
	}
	defer db.stop()
	var rows []scaleRow
	for _, kind := range kinds {
		r, err := startScaleRedis(filepath.Join(dir, "redis-"+kind), kind)
		if err != nil {
			return err
		}
		for _, sh := range shapes {
			progress("scale: %s Redis, %d worker and %d api processes, %d tasks", kind, sh.workers, sh.apis, o.ScaleTasks)
			row, err := scalePoint(ctx, exe, o, db, r, sh, progress)
			if err != nil {
				r.stop()
				return fmt.Errorf("%s Redis, %d workers, %d apis: %w", kind, sh.workers, sh.apis, err)
			}
			rows = append(rows, row)
		}
		r.stop()
	}
	printScale(out, rows, o)
	return nil
}

func printScale(out io.Writer, rows []scaleRow, o Options) {
	fmt.Fprintf(out, "\nSCALE: %d tasks per point after a warm-up, %d submitters, %d simulator models (no latency), tasks/s from the first submission to the last completion\n",
		o.ScaleTasks, o.Submitters, o.ScaleModels)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprint(tw, "REDIS\tWORKERS\tAPIS\tTASKS/S\tP50\tP99\tREDIS CMD/TASK\tMYSQL STMT/TASK")
	for _, k := range scaleKinds {
		fmt.Fprintf(tw, "\tCPU µs/TASK %s", k)
	}
	fmt.Fprintln(tw, "\tLOAD BEFORE\tLOAD AFTER")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%.1f\t%.1f", r.redis, r.shape.workers, r.shape.apis, r.res.rate(),
			ms(r.res.latency.pct(50)), ms(r.res.latency.pct(99)), r.redisCmd, r.mysqlQ)
		for _, k := range scaleKinds {
			fmt.Fprintf(tw, "\t%.0f", r.cpu[k])
		}
		fmt.Fprintf(tw, "\t%s\t%s\n", r.loadBefore, r.loadAfter)
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	for _, r := range rows {
		fmt.Fprintf(out, "%s w%d a%d: redis per task: %s\n", r.redis, r.shape.workers, r.shape.apis, r.topCmds)
		fmt.Fprintf(out, "%s w%d a%d: mysql per task: %s\n", r.redis, r.shape.workers, r.shape.apis, r.topStmts)
		if r.failed > 0 || r.undeco > 0 {
			fmt.Fprintf(out, "%s w%d a%d: %d tasks failed, %d bus messages undecodable\n", r.redis, r.shape.workers, r.shape.apis, r.failed, r.undeco)
		}
	}
}

// scalePoint measures one shape on a fresh database and an empty Redis.
func scalePoint(ctx context.Context, exe string, o Options, db *mariaDB, r *scaleRedis, sh scaleShape, progress func(string, ...any)) (scaleRow, error) {
	row := scaleRow{redis: r.kind, shape: sh, cpu: map[string]float64{}}
	if err := db.reset(ctx); err != nil {
		return row, err
	}
	if err := r.flush(ctx); err != nil {
		return row, err
	}
	env := scaleEnv(db, r)
	// The schema first, as a deployment does (`migrate`), then the
	// processes side by side.
	if err := migrate(ctx, exe, env); err != nil {
		return row, err
	}
	procs, err := startScaleProcs(ctx, exe, env, sh)
	defer stopProcs(procs)
	if err != nil {
		return row, err
	}
	var apis []*client
	for _, p := range procs {
		if p.role == "api" {
			apis = append(apis, newClient(p.url, o.Submitters))
		}
	}
	models := make([]int, o.ScaleModels)
	for i := range models {
		id, err := apis[0].createModel(ctx, fmt.Sprintf("scale-%d", i), 50, "online")
		if err != nil {
			return row, err
		}
		models[i] = id
	}
	col, err := newCollector(ctx, r.client, r.prefix)
	if err != nil {
		return row, err
	}
	defer col.close()
	submit := func(ctx context.Context, i int) (int, error) {
		return apis[i%len(apis)].submitREST(ctx, models[i%len(models)], fmt.Sprintf("scale %d", i))
	}
	warm := max(o.ScaleTasks/10, 20)
	if _, err := runE2E(ctx, col, warm, o.Submitters, submit); err != nil {
		return row, fmt.Errorf("warm-up: %w", err)
	}
	pids := map[string][]int{"mariadbd": {db.pid()}, "redis": r.pids(), "bench": {os.Getpid()}}
	for _, p := range procs {
		pids[p.role] = append(pids[p.role], p.cmd.Process.Pid)
	}
	if err := measureScale(ctx, col, o, db, r, pids, submit, &row); err != nil {
		return row, err
	}
	progress("scale: %.0f tasks/s, %.1f redis commands and %.1f mysql statements per task", row.res.rate(), row.redisCmd, row.mysqlQ)
	return row, nil
}

// migrate runs `migrate` with env, as a deployment does before it starts
// its processes.
func migrate(ctx context.Context, exe string, env []string) error {
	mig := exec.CommandContext(ctx, exe, "migrate")
	mig.Env = env
	if out, err := mig.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v: %s", err, out)
	}
	return nil
}

// startScaleProcs starts a shape's api and worker processes side by side.
// It returns the processes that started even on error, for the caller to
// stop.
func startScaleProcs(ctx context.Context, exe string, env []string, sh scaleShape) ([]*scaleProc, error) {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		errs  []error
		procs []*scaleProc
	)
	roles := slices.Repeat([]string{"api"}, sh.apis)
	roles = append(roles, slices.Repeat([]string{"worker"}, sh.workers)...)
	for _, role := range roles {
		wg.Go(func() {
			p, err := startScaleProc(ctx, exe, role, env)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			procs = append(procs, p)
		})
	}
	wg.Wait()
	return procs, errors.Join(errs...)
}

// measureScale runs the measured tasks of one shape and fills row with
// their rate and what each task cost: the servers' counters and the
// processes' CPU, read before and after the run.
func measureScale(ctx context.Context, col *collector, o Options, db *mariaDB, r *scaleRedis, pids map[string][]int, submit submitFunc, row *scaleRow) error {
	row.loadBefore = loadAvg()
	cmd0, err := r.commandStats(ctx)
	if err != nil {
		return err
	}
	q0, err := db.status(ctx)
	if err != nil {
		return err
	}
	cpu0, err := cpuOf(pids)
	if err != nil {
		return err
	}
	failed0 := col.failed.Load()
	res, err := runE2E(ctx, col, o.ScaleTasks, o.Submitters, submit)
	if err != nil {
		return err
	}
	cpu1, err := cpuOf(pids)
	if err != nil {
		return err
	}
	q1, err := db.status(ctx)
	if err != nil {
		return err
	}
	cmd1, err := r.commandStats(ctx)
	if err != nil {
		return err
	}
	row.loadAfter = loadAvg()
	row.res = res
	n := float64(res.n)
	row.redisCmd, row.topCmds = perTask(cmd0, cmd1, n, "", 8)
	row.mysqlQ = float64(q1["Questions"]-q0["Questions"]) / n
	_, row.topStmts = perTask(q0, q1, n, "Com_", 8)
	for k := range cpu1 {
		row.cpu[k] = float64(cpu1[k]-cpu0[k]) / n
	}
	row.failed = col.failed.Load() - failed0
	row.undeco = col.bad.Load()
	return nil
}

// perTask is the total of the counters' growth per task (those named with
// prefix; all when empty) and the largest ones, formatted.
func perTask(before, after map[string]int64, n float64, prefix string, top int) (float64, string) {
	type kv struct {
		k string
		v float64
	}
	var all []kv
	total := 0.0
	for k, v := range after {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		d := float64(v-before[k]) / n
		if d <= 0 {
			continue
		}
		total += d
		all = append(all, kv{strings.TrimPrefix(k, prefix), d})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for i, e := range all {
		if i == top {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v))
	}
	return total, strings.Join(parts, ", ")
}

// loadAvg is the machine's 1-minute load average, or "?" where /proc
// cannot say (the report still prints; nothing depends on it).
func loadAvg() string {
	l, err := procfs.NewDefaultFS()
	if err != nil {
		return "?"
	}
	avg, err := l.LoadAvg()
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(avg.Load1, 'f', 2, 64)
}

// cpuOf sums each kind's processes' CPU time (user + system) in µs.
func cpuOf(pids map[string][]int) (map[string]int64, error) {
	out := map[string]int64{}
	for kind, ps := range pids {
		for _, pid := range ps {
			us, err := procCPU(pid)
			if err != nil {
				return nil, fmt.Errorf("%s process %d: %w", kind, pid, err)
			}
			out[kind] += us
		}
	}
	return out, nil
}

// procCPU is a process's utime + stime, in µs (procfs reads
// /proc/<pid>/stat).
func procCPU(pid int) (int64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return int64(st.CPUTime() * 1e6), nil
}

// scaleEnv is the processes' environment: the caller's without its
// database, Redis, server and queue settings, then the bench's.
func scaleEnv(db *mariaDB, r *scaleRedis) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		skip := false
		for _, p := range []string{"DB_", "REDIS_", "SERVER_", "QUEUE_", "WORKER_", "AUTH_", "APP_", "LOG_", "METRICS_"} {
			skip = skip || strings.HasPrefix(k, p)
		}
		if !skip {
			env = append(env, kv)
		}
	}
	env = append(env, "DB_DRIVER=mysql", "DB_HOST=127.0.0.1", "DB_PORT="+strconv.Itoa(db.port), "DB_USER=root",
		"DB_PASSWORD=", "DB_NAME="+scaleDB, "REDIS_KEY_PREFIX="+r.prefix, "QUEUE_MAX_QUEUE_SIZE=1000000",
		"LOG_LEVEL=warn", "AUTH_ENABLED=false", "APP_ENV=development", "SERVER_HOST=127.0.0.1")
	if r.kind == "cluster" {
		env = append(env, "REDIS_CLUSTER_ADDRS="+strings.Join(r.addrs, ","))
	} else {
		host, port, _ := strings.Cut(r.addrs[0], ":")
		env = append(env, "REDIS_HOST="+host, "REDIS_PORT="+port, "REDIS_DB=0")
	}
	return env
}

// scaleProc is one scheduler process of the deployment.
type scaleProc struct {
	role string
	url  string // the api's, or the worker's metrics listener
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// startScaleProc starts `serve --role role` and waits until it answers:
// an api process on its health endpoint, a worker on its metrics listener.
func startScaleProc(ctx context.Context, exe, role string, env []string) (*scaleProc, error) {
	ports, err := redistest.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := []string{"serve", "--role", role}
	probe := "http://" + addr + "/api/v1/system/health"
	env = slices.Clone(env)
	if role == "api" {
		env = append(env, "SERVER_PORT="+strconv.Itoa(ports[0]))
	} else {
		args = append(args, "--metrics-addr", addr)
		probe = "http://" + addr + "/metrics"
	}
	logf, err := os.CreateTemp("", "llmsched-scale-"+role+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s process: %w", role, err), logf.Close())
	}
	p := &scaleProc{role: role, url: "http://" + addr, cmd: cmd, done: make(chan error, 1), log: logf}
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, probe, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("%s process exited at start (%v): %s", role, err, p.tail())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s process not up within 90s: %s", role, p.tail())
		}
	}
}

// tail is the end of the process's log.
func (p *scaleProc) tail() string {
	raw, _ := os.ReadFile(p.log.Name())
	if len(raw) > 2000 {
		raw = raw[len(raw)-2000:]
	}
	return string(raw)
}

func (p *scaleProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	// How a process told to stop ended (signalled, killed) is not part of
	// any measurement, and its log goes with it.
	var exit error
	select {
	case exit = <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		exit = <-p.done
	}
	_ = exit
	_ = p.log.Close() // only the child wrote to it; it is removed next
	_ = os.Remove(p.log.Name())
}

// stopProcs stops the processes side by side.
func stopProcs(ps []*scaleProc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

// scaleDB is the database the scaling mode creates on its MariaDB.
const scaleDB = "llmsched_scale"

// mariaDB is the scaling mode's private MariaDB (package mysqltest) and a
// connection to it.
type mariaDB struct {
	srv  *mysqltest.Server
	port int
	db   *sql.DB
}

func startMariaDB(ctx context.Context, dir string) (*mariaDB, error) {
	srv, err := mysqltest.Start(ctx, dir, mysqltest.Options{Args: []string{"--max-connections=1000"}, DieWithParent: true})
	if err != nil {
		return nil, fmt.Errorf("the scaling mode starts its own MariaDB: %w", err)
	}
	db, err := sql.Open("mysql", srv.DSN(""))
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return &mariaDB{srv: srv, port: srv.Port, db: db}, nil
}

func (m *mariaDB) pid() int { return m.srv.PID() }

func (m *mariaDB) reset(ctx context.Context) error {
	for _, q := range []string{"DROP DATABASE IF EXISTS " + scaleDB, "CREATE DATABASE " + scaleDB} {
		if _, err := m.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// status reads the server's statement counters.
func (m *mariaDB) status(ctx context.Context) (map[string]int64, error) {
	return mysqlStatus(ctx, m.db)
}

func (m *mariaDB) stop() {
	_ = m.db.Close()
	m.srv.Stop()
}

// scaleRedis is the bench's own Redis: one server, or a Redis Cluster.
type scaleRedis struct {
	kind    string
	prefix  string
	addrs   []string
	client  redis.UniversalClient
	servers []*redistest.Server
	stop    func()
}

func startScaleRedis(dir, kind string) (*scaleRedis, error) {
	r := &scaleRedis{kind: kind, prefix: "llmsched"}
	if kind == "cluster" {
		c, err := redistest.StartCluster(dir)
		if err != nil {
			return nil, err
		}
		r.addrs, r.servers = c.Addrs(), c.Nodes
		r.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.addrs})
		r.stop = func() { _ = r.client.Close(); c.Stop() }
		return r, nil
	}
	s, err := redistest.StartSingle(dir)
	if err != nil {
		return nil, err
	}
	r.addrs, r.servers = []string{s.Addr()}, []*redistest.Server{s}
	r.client = redis.NewClient(&redis.Options{Addr: s.Addr()})
	r.stop = func() { _ = r.client.Close(); s.Kill() }
	return r, nil
}

func (r *scaleRedis) pids() []int {
	var out []int
	for _, s := range r.servers {
		out = append(out, s.Pid())
	}
	return out
}

// masters runs fn on every master.
func (r *scaleRedis) masters(ctx context.Context, fn func(context.Context, *redis.Client) error) error {
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("unexpected redis client %T", r.client)
}

func (r *scaleRedis) flush(ctx context.Context) error {
	return r.masters(ctx, func(ctx context.Context, c *redis.Client) error { return c.FlushAll(ctx).Err() })
}

// commandStats sums INFO commandstats calls over the masters, by command.
// The bench's own INFO calls are left out.
func (r *scaleRedis) commandStats(ctx context.Context) (map[string]int64, error) {
	var mu sync.Mutex
	out := map[string]int64{}
	err := r.masters(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return fmt.Errorf("redis info commandstats: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		addCommandStats(out, info)
		return nil
	})
	return out, err
}
