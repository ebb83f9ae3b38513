// Package chaos holds the reliability tests that need real processes and
// services this package can stop: a private MariaDB and a private Redis
// (started here, on their own ports and data directories, never the shared
// ones), and the llm-scheduler binary built from this tree. The quick tests
// (crash takeover, SIGTERM, dependency outages) run in the MySQL pass of
// the test command; the long fault-injection run is behind the chaos build
// tag (make chaos).
package chaos

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/llmsched/llm-scheduler/internal/mysqltest"
)

// services are the private MariaDB and Redis of this test binary.
var services struct {
	maria *MariaDB
	redis *Redis
	dir   string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if services.redis != nil {
		services.redis.Stop()
	}
	if services.maria != nil {
		services.maria.Stop()
	}
	if services.dir != "" {
		if err := os.RemoveAll(services.dir); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: remove the services' directory:", err)
		}
	}
	os.Exit(code)
}

var servicesOnce sync.Once

// privateServices starts (once) the private MariaDB and Redis. The tests
// run in the MySQL pass of the test command, where MariaDB and Redis are
// installed; on the embedded pass they are skipped.
func privateServices(t *testing.T) (*MariaDB, *Redis) {
	t.Helper()
	if os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		t.Skip("needs mariadbd and redis-server: runs with LLMSCHED_TEST_BACKEND=mysql (the MySQL pass of scripts/test.sh)")
	}
	servicesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "llmsched-chaos-")
		if err != nil {
			services.err = err
			return
		}
		services.dir = dir
		if services.maria, err = newMariaDB(filepath.Join(dir, "mariadb")); err != nil {
			services.err = err
			return
		}
		if services.redis, err = newRedis(filepath.Join(dir, "redis")); err != nil {
			services.err = err
		}
	})
	if services.err != nil {
		t.Fatalf("private services: %v", services.err)
	}
	return services.maria, services.redis
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string, up bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if c != nil {
			c.Close()
		}
		if (err == nil) == up {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come %s within %s", addr, map[bool]string{true: "up", false: "down"}[up], timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Redis is a private redis-server without persistence: a restart loses
// every key, as a failover to an empty replica would.
type Redis struct {
	Port int
	dir  string
	cmd  *exec.Cmd
}

func newRedis(dir string) (*Redis, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Port: port, dir: dir}
	return r, r.Start()
}

// Addr is host:port.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// Start starts the server (empty).
func (r *Redis) Start() error {
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }() // the child has its own descriptor; nothing was written through this one
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", fmt.Sprint(r.Port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no")
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	return waitTCP(r.Addr(), true, 20*time.Second)
}

// Stop stops the server (its data is gone).
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// MariaDB is the private mariadbd (package mysqltest), with relaxed
// durability (these tests stop and start it, they do not measure it).
type MariaDB struct{ *mysqltest.Server }

func newMariaDB(dir string) (*MariaDB, error) {
	s, err := mysqltest.Start(context.Background(), dir, mysqltest.Options{Args: []string{
		"--skip-grant-tables", "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2", "--max-connections=500"}})
	if err != nil {
		return nil, err
	}
	return &MariaDB{s}, nil
}

// Start starts the server again after Stop (same port and data).
func (m *MariaDB) Start() error { return m.Server.Start(context.Background()) }

// DB opens a connection to database name.
func (m *MariaDB) DB(t testing.TB, name string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", m.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds llm-scheduler from this tree, once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(services.dir, "llm-scheduler")
		out, err := exec.Command("go", "build", "-o", binPath, "../..").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// redisDBs hands each test its own Redis database number.
var redisDBs = struct {
	sync.Mutex
	next int
}{next: 1}

// Cluster is a set of llm-scheduler processes on one database and one
// Redis database, configured by one YAML file.
type Cluster struct {
	t       *testing.T
	Dir     string
	Config  string
	DBName  string
	RedisDB int
	Maria   *MariaDB
	Redis   *Redis
	procs   []*Proc
}

// Settings are the parts of the configuration tests vary.
type Settings struct {
	LeaseTTL       time.Duration
	ShutdownGrace  time.Duration
	WorkerCapacity int
	// Redis, when set, replaces the redis line of the configuration (a
	// Sentinel set or a Redis Cluster instead of the private Redis).
	Redis string
}

// NewCluster prepares a database, a Redis database and a config file.
func NewCluster(t *testing.T, s Settings) *Cluster {
	t.Helper()
	maria, rds := privateServices(t)
	redisDBs.Lock()
	db := redisDBs.next
	redisDBs.next++
	redisDBs.Unlock()
	if db > 15 {
		t.Fatalf("out of redis database numbers")
	}
	c := &Cluster{t: t, Dir: t.TempDir(), DBName: fmt.Sprintf("chaos_%s_%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_")), time.Now().UnixNano()%1e6),
		RedisDB: db, Maria: maria, Redis: rds}
	if len(c.DBName) > 60 {
		c.DBName = c.DBName[len(c.DBName)-60:]
	}
	redisLine := fmt.Sprintf("redis: {host: 127.0.0.1, port: %d, db: %d, key_prefix: chaos}", rds.Port, db)
	if s.Redis != "" {
		redisLine = s.Redis
	}
	cfg := fmt.Sprintf(`app: {env: test}
server: {host: 127.0.0.1, port: 8080, shutdown_grace: %s}
database: {driver: mysql, host: 127.0.0.1, port: %d, username: root, password: "", database: %s, auto_migrate: true, max_open_conns: 20}
%s
queue: {poll_interval: 5ms, reconcile_interval: 500ms, lease_ttl: %s, retry_delay: 200ms, max_retry_delay: 2s, max_queue_size: 10000}
worker: {max_workers: %d, default_workers: 1}
log: {level: info, format: json}
`, s.ShutdownGrace, maria.Port, c.DBName, redisLine, s.LeaseTTL, s.WorkerCapacity)
	c.Config = filepath.Join(c.Dir, "config.yaml")
	if err := os.WriteFile(c.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.Kill()
		}
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("--- log of %s (pid %d), last lines:\n%s", p.Role, p.PID, tail(p.LogPath, 40))
			}
		}
	})
	return c
}

// Proc is one llm-scheduler process.
type Proc struct {
	Role    string
	PID     int
	URL     string
	LogPath string
	// Worker is the name the process writes into attempt records.
	Worker string
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
}

// Start starts a process of role (api, worker or all) and waits until it
// serves (api, all) or has started (worker). env adds environment
// variables (KEY=value) that override the config file.
func (c *Cluster) Start(role string, env ...string) *Proc {
	c.t.Helper()
	bin := binary(c.t)
	port, err := freePort()
	if err != nil {
		c.t.Fatal(err)
	}
	p := &Proc{Role: role, LogPath: filepath.Join(c.Dir, fmt.Sprintf("%s-%d.log", role, len(c.procs))), done: make(chan struct{})}
	log, err := os.Create(p.LogPath)
	if err != nil {
		c.t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--role", role, "--config", c.Config)
	p.cmd.Env = append(append(os.Environ(), fmt.Sprintf("SERVER_PORT=%d", port)), env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	_ = log.Close() // the child has its own descriptor; nothing was written through this one
	p.PID = p.cmd.Process.Pid
	host, _ := os.Hostname()
	p.Worker = fmt.Sprintf("%s:%d", host, p.PID)
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	c.procs = append(c.procs, p)
	if role != "worker" {
		p.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(readFile(p.LogPath), "llm-scheduler started") {
		select {
		case <-p.done:
			c.t.Fatalf("%s process exited at start: %v\n%s", role, p.err, tail(p.LogPath, 30))
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s process did not start:\n%s", role, tail(p.LogPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Term sends SIGTERM.
func (p *Proc) Term() { _ = p.cmd.Process.Signal(syscall.SIGTERM) }

// Wait waits for the process to exit and returns its error.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("process %d still running after %s", p.PID, timeout)
	}
}

func readFile(path string) string {
	raw, _ := os.ReadFile(path)
	return string(raw)
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }() // read only
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// client is the HTTP client of the tests.
var client = &http.Client{Timeout: 15 * time.Second}

// call sends a JSON request and decodes the JSON answer into out.
func call(ctx context.Context, method, url string, body any, out any, headers ...string) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}

// createModel registers a simulator model and returns its id.
func createModel(t *testing.T, api *Proc, name string, maxWorkers int, cfg map[string]any) int {
	t.Helper()
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	code, err := call(context.Background(), "POST", api.URL+"/api/v1/models",
		map[string]any{"name": name, "type": "simulator", "max_workers": maxWorkers, "config": cfg}, &out)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create model %s: status %d: %v", name, code, err)
	}
	return out.Data.ID
}

// submit creates a task and returns its id.
func submit(t *testing.T, api *Proc, modelID int, input string) int {
	t.Helper()
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	code, err := call(context.Background(), "POST", api.URL+"/api/v1/tasks",
		map[string]any{"model_id": modelID, "type": "text-generation", "input": input}, &out)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create task: status %d: %v", code, err)
	}
	return out.Data.ID
}

// attemptRow is one attempt as stored.
type attemptRow struct {
	TaskID, Number, ModelID int
	Status, ErrorKind       string
	Error, Worker           string
	Started                 time.Time
	Finished                *time.Time
}

// eachRow runs query and calls scan on every row; any error, including one
// that ends the iteration early, fails the test.
func eachRow(t *testing.T, db *sql.DB, scan func(*sql.Rows) error, query string, args ...any) {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

func attempts(t *testing.T, db *sql.DB, where string, args ...any) []attemptRow {
	t.Helper()
	rows, err := db.Query(`SELECT task_id, number, model_id, status, COALESCE(error_kind, ''), COALESCE(error, ''),
		COALESCE(worker, ''), started_at, finished_at FROM attempts `+where+` ORDER BY task_id, number`, args...)
	if err != nil {
		t.Fatalf("read attempts: %v", err)
	}
	defer rows.Close()
	var out []attemptRow
	for rows.Next() {
		var a attemptRow
		if err := rows.Scan(&a.TaskID, &a.Number, &a.ModelID, &a.Status, &a.ErrorKind, &a.Error, &a.Worker, &a.Started, &a.Finished); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// taskStatus reads a task's status from the database.
func taskStatus(t *testing.T, db *sql.DB, id int) string {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT status FROM tasks WHERE id = ?", id).Scan(&s); err != nil {
		t.Fatalf("read task %d: %v", id, err)
	}
	return s
}

// waitStatus polls the database until task id has status want.
func waitStatus(t *testing.T, db *sql.DB, id int, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := taskStatus(t, db, id)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %d is %s after %s, want %s", id, got, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peakPerModel is the largest number of attempts of each model open at one
// instant. A lost attempt of a killed worker ends at the kill.
func peakPerModel(as []attemptRow, killedAt map[string]time.Time) map[int]int {
	type edge struct {
		at    time.Time
		delta int
	}
	edges := map[int][]edge{}
	for _, a := range as {
		end := time.Now()
		if a.Finished != nil {
			end = *a.Finished
		}
		if k, ok := killedAt[a.Worker]; ok && a.Status == "lost" && k.Before(end) {
			end = k
		}
		edges[a.ModelID] = append(edges[a.ModelID], edge{a.Started, 1}, edge{end, -1})
	}
	peaks := map[int]int{}
	for id, es := range edges {
		sort.Slice(es, func(i, j int) bool {
			if es[i].at.Equal(es[j].at) {
				return es[i].delta < es[j].delta
			}
			return es[i].at.Before(es[j].at)
		})
		cur := 0
		for _, e := range es {
			cur += e.delta
			peaks[id] = max(peaks[id], cur)
		}
	}
	return peaks
}

// waitFinished polls every interval until no task is pending or running;
// it fails the test when ctx ends first.
func waitFinished(ctx context.Context, t *testing.T, db *sql.DB, every time.Duration) {
	t.Helper()
	for {
		var unfinished int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'running')").Scan(&unfinished); err != nil {
			t.Logf("poll: %v", err)
		} else if unfinished == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d tasks still unfinished when the run timed out", unfinished)
		}
		time.Sleep(every)
	}
}

// taskIDs is the id of every stored task.
func taskIDs(t *testing.T, db *sql.DB) []int {
	t.Helper()
	var ids []int
	eachRow(t, db, func(rows *sql.Rows) error {
		var id int
		err := rows.Scan(&id)
		ids = append(ids, id)
		return err
	}, "SELECT id FROM tasks")
	return ids
}
