// Package apptest starts real scheduler processes for tests: against MySQL
// and Redis (LLMSCHED_TEST_BACKEND=mysql) or on the embedded default
// (SQLite and miniredis, the default). Each Env gets its own database and
// its own Redis database number, and cleans up only what it created.
//
// Environment: LLMSCHED_TEST_BACKEND (embedded|mysql), TEST_MYSQL_HOST
// (127.0.0.1), TEST_MYSQL_PORT (3306), TEST_MYSQL_USER (root),
// TEST_MYSQL_PASSWORD (""), TEST_REDIS_ADDR (127.0.0.1:6379).
//
// On the mysql backend Redis may instead be a Redis Cluster or a Sentinel
// set (package redistest and its command redis-topology start both):
// TEST_REDIS_CLUSTER (node addresses, comma-separated) or
// TEST_REDIS_SENTINEL (master-name@sentinel,sentinel,...). A Sentinel
// master has database numbers, claimed as on a single Redis. A Cluster
// has only database 0 and asynq's keys are not prefixed, so tests on a
// Cluster take turns: a test holds a claim key while its scenarios live
// and flushes the cluster when the last ends (the cluster must be the
// tests' own).
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/mysqltest"
	"github.com/llmsched/llm-scheduler/internal/redistest"
	"github.com/llmsched/llm-scheduler/internal/secrets"
	"github.com/llmsched/llm-scheduler/server"
)

// Backend returns the backend tests run against.
func Backend() string {
	if b := os.Getenv("LLMSCHED_TEST_BACKEND"); b != "" {
		return b
	}
	return "embedded"
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Shared is the storage of one test scenario: a config that several
// processes (Envs) can share, like a cluster on one MySQL and one Redis.
type Shared struct {
	Config *config.Config
	// Redis is a client on the scenario's Redis database (for assertions
	// and for fault injection such as a flush).
	Redis redis.UniversalClient
	// Embedded mode shares one in-process Redis between the Envs.
	embedded *app.App
	// idsShifted: the scenario's task ids start at a random offset.
	idsShifted bool
	// PlainTaskIDs keeps task ids from 1 on MySQL (no shift, see
	// shiftTaskIDs), for a test of the numbering itself. Another test
	// package cancelling its own task of the same number would cancel
	// this scenario's: keep its tasks few and short.
	PlainTaskIDs bool
	// BeforeStart, when set, runs on each process after it is built and
	// before its background loops start: the place to install an ent
	// interceptor, which must not be added while queries run.
	BeforeStart func(*app.App)
}

// shiftTaskIDs starts the scenario's task ids at a random point of the
// tasks' id range. Test packages run in parallel on one Redis server, and
// asynq's cancel channel ("asynq:cancel") spans all its databases: with
// ids that repeat from database to database, one test's cancel could abort
// another test's task.
func shiftTaskIDs(t testing.TB, a *app.App) {
	t.Helper()
	ctx := context.Background()
	var next int64
	err := a.Store.DB.QueryRowContext(ctx,
		"SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tasks'").Scan(&next)
	if err != nil {
		t.Fatalf("read tasks id start: %v", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	offset := int64(b[0])<<16 | int64(b[1])<<8 | int64(b[2]) // below 2^24
	if _, err := a.Store.DB.ExecContext(ctx, fmt.Sprintf("ALTER TABLE tasks AUTO_INCREMENT = %d", next+offset+1)); err != nil {
		t.Fatalf("shift task ids: %v", err)
	}
}

// NewShared prepares storage for a scenario and registers its cleanup.
// mutate adjusts the configuration (queue settings and the like).
func NewShared(t testing.TB, mutate func(*config.Config)) *Shared {
	t.Helper()
	cfg := config.Defaults(false)
	cfg.App.Env = "test"
	cfg.Queue.PollInterval = config.Duration(2 * time.Millisecond)
	cfg.Queue.ReconcileInterval = config.Duration(500 * time.Millisecond)
	// Long enough that a heartbeat delayed by a loaded CI machine (race
	// detector, a thousand websockets) never lets a live lease expire.
	cfg.Queue.LeaseTTL = config.Duration(10 * time.Second)
	cfg.Queue.RetryDelay = config.Duration(100 * time.Millisecond)
	cfg.Queue.MaxRetryDelay = config.Duration(2 * time.Second)
	cfg.Server.ShutdownGrace = config.Duration(2 * time.Second)
	// Every test stops its processes: no drain window unless one asks.
	cfg.Server.DrainWindow = 0
	cfg.Log.Level = getenv("LLMSCHED_TEST_LOG_LEVEL", "warn")
	sh := &Shared{Config: &cfg}
	switch Backend() {
	case "mysql":
		cfg.Database = mysqltest.Shared(t, cfg.Database)
		cfg.Database.AutoMigrate = true
		// As in production: provider secrets sealed at rest.
		cfg.Auth.EncryptionKey = secrets.GenerateKey()
		switch {
		case os.Getenv("TEST_REDIS_CLUSTER") != "":
			cfg.Redis.ClusterAddrs = strings.Split(os.Getenv("TEST_REDIS_CLUSTER"), ",")
			sh.Redis = claimCluster(t, cfg.Redis.ClusterAddrs)
		case os.Getenv("TEST_REDIS_SENTINEL") != "":
			name, addrs, ok := strings.Cut(os.Getenv("TEST_REDIS_SENTINEL"), "@")
			if !ok {
				t.Fatalf("TEST_REDIS_SENTINEL must be master-name@host:port,..., got %q", os.Getenv("TEST_REDIS_SENTINEL"))
			}
			cfg.Redis.SentinelMaster, cfg.Redis.SentinelAddrs = name, strings.Split(addrs, ",")
			cfg.Redis.DB, sh.Redis = claimRedisDB(t, "sentinel "+addrs, func(db int) redis.UniversalClient {
				return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: name, SentinelAddrs: cfg.Redis.SentinelAddrs, DB: db})
			})
		default:
			addr := redistest.SharedAddr()
			host, port, _ := strings.Cut(addr, ":")
			cfg.Redis.Host = host
			cfg.Redis.Port, _ = strconv.Atoi(port)
			cfg.Redis.DB, sh.Redis = claimRedisDB(t, addr, func(db int) redis.UniversalClient {
				return redis.NewClient(&redis.Options{Addr: addr, DB: db})
			})
		}
		// Redis pub/sub channels are shared by every database number of a
		// server, so the event bus of each scenario needs its own prefix
		// (test packages run in parallel against one Redis).
		cfg.Redis.KeyPrefix = "llmsched-test-" + randomHex(4)
	case "embedded":
		cfg.Database.Driver = "sqlite"
		cfg.Database.SQLitePath = filepath.Join(t.TempDir(), "test.db")
		cfg.Redis.Embedded = true
	default:
		t.Fatalf("LLMSCHED_TEST_BACKEND must be embedded or mysql, got %q", Backend())
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return sh
}

// redisClaims serialises DB-number claims inside this test process.
var redisClaims sync.Mutex

// claimRedisDB takes a Redis database number no one else uses: it must be
// empty, and a marker key holds it while the test runs. At cleanup the
// database is flushed (it held only this test's keys) and released.
func claimRedisDB(t testing.TB, addr string, open func(db int) redis.UniversalClient) (int, redis.UniversalClient) {
	t.Helper()
	redisClaims.Lock()
	defer redisClaims.Unlock()
	ctx := context.Background()
	const marker = "llmsched-test:claim"
	for db := 15; db >= 1; db-- {
		c := open(db)
		ok, err := c.SetNX(ctx, marker, os.Getpid(), 30*time.Minute).Result()
		if err != nil {
			_ = c.Close()
			t.Fatalf("redis at %s: %v", addr, err)
		}
		if !ok {
			_ = c.Close()
			continue
		}
		if n, err := c.DBSize(ctx).Result(); err != nil || n != 1 {
			// Someone else's data lives here: leave it alone.
			_ = c.Del(ctx, marker)
			_ = c.Close()
			continue
		}
		t.Cleanup(func() {
			if err := c.FlushDB(context.Background()).Err(); err != nil {
				t.Errorf("flush test redis db %d: %v", db, err)
			}
			_ = c.Close()
		})
		return db, c
	}
	t.Fatalf("no free redis database number at %s (all of 1..15 are in use or hold data)", addr)
	return 0, nil
}

// clusterClaimWait bounds how long a scenario waits for its turn on a
// Redis Cluster.
const clusterClaimWait = 10 * time.Minute

// clusterHold is this process's claim on the Redis Cluster: the top-level
// test holding it, and how many of its scenarios are alive. Scenarios of
// one top-level test (several in one test, parallel subtests) share the
// claim: the test would wait for itself otherwise.
var clusterHold struct {
	sync.Mutex
	owner string
	refs  int
}

// claimCluster waits until no other test holds the Redis Cluster at
// addrs, claims it, and once the test's last scenario ends flushes every
// master (which also drops the claim). See the package comment.
func claimCluster(t testing.TB, addrs []string) redis.UniversalClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	ctx := context.Background()
	const claim = "llmsched-test:cluster-claim"
	top, _, _ := strings.Cut(t.Name(), "/")
	deadline := time.Now().Add(clusterClaimWait)
	for {
		clusterHold.Lock()
		if clusterHold.owner == "" {
			ok, err := c.SetNX(ctx, claim, fmt.Sprintf("%d %s", os.Getpid(), top), 30*time.Minute).Result()
			if err != nil {
				clusterHold.Unlock()
				_ = c.Close()
				t.Fatalf("redis cluster at %v: %v", addrs, err)
			}
			if ok {
				clusterHold.owner = top
			}
		}
		if clusterHold.owner == top {
			clusterHold.refs++
			clusterHold.Unlock()
			break
		}
		clusterHold.Unlock()
		if time.Now().After(deadline) {
			holder, _ := c.Get(ctx, claim).Result()
			_ = c.Close()
			t.Fatalf("redis cluster at %v still claimed by %q after %s", addrs, holder, clusterClaimWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		defer c.Close()
		clusterHold.Lock()
		defer clusterHold.Unlock()
		if clusterHold.refs--; clusterHold.refs > 0 {
			return
		}
		clusterHold.owner = ""
		err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
			return m.FlushAll(ctx).Err()
		})
		if err != nil {
			t.Errorf("flush test redis cluster: %v", err)
		}
	})
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Env is one running scheduler process (in-process: app.App with its HTTP
// server on a random loopback port).
type Env struct {
	T      testing.TB
	App    *app.App
	URL    string
	Shared *Shared
	HTTP   *http.Client
	// Logs holds what the process logged (also passed to t.Log).
	Logs *SyncBuffer
}

// Start starts a process playing role on the shared storage.
func (sh *Shared) Start(t testing.TB, role app.Role) *Env {
	t.Helper()
	cfg := *sh.Config
	logs := &SyncBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logs), &slog.HandlerOptions{Level: levelOf(cfg.Log.Level)}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var a *app.App
	var err error
	if cfg.Redis.Embedded && sh.embedded != nil {
		// Later processes share the first one's in-process Redis.
		cfg.Redis.Embedded = false
		host, port, _ := strings.Cut(sh.embedded.Broker.Embedded.Addr(), ":")
		cfg.Redis.Host = host
		cfg.Redis.Port, _ = strconv.Atoi(port)
	}
	a, err = app.New(ctx, &cfg, role, log)
	if err != nil {
		t.Fatalf("start %s process: %v", role, err)
	}
	if cfg.Redis.Embedded {
		sh.embedded = a
		sh.Redis = a.Broker.Client
	}
	if cfg.Database.Driver == "mysql" && !sh.idsShifted && !sh.PlainTaskIDs {
		shiftTaskIDs(t, a)
		sh.idsShifted = true
	}
	if sh.BeforeStart != nil {
		sh.BeforeStart(a)
	}
	if err := a.Start(ctx, server.New, "127.0.0.1:0"); err != nil {
		t.Fatalf("start %s process: %v", role, err)
	}
	e := &Env{T: t, App: a, Shared: sh, HTTP: &http.Client{Timeout: 30 * time.Second}, Logs: logs}
	if a.Addr() != "" {
		e.URL = "http://" + a.Addr()
	}
	t.Cleanup(func() { e.Stop() })
	return e
}

// New starts one process of role all on fresh storage.
func New(t testing.TB, mutate func(*config.Config)) *Env {
	t.Helper()
	return NewShared(t, mutate).Start(t, app.RoleAll)
}

// Stop shuts the process down (idempotent).
func (e *Env) Stop() {
	if e.App == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.App.Shutdown(ctx); err != nil {
		e.T.Logf("shutdown: %v", err)
	}
	if e.Shared.embedded == e.App {
		// Its in-process Redis is gone with it: the next process started
		// on this scenario brings a new, empty one (a restart of a whole
		// embedded deployment).
		e.Shared.embedded = nil
	}
	e.App = nil
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func levelOf(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil). It returns the status code.
func (e *Env) Do(method, path string, body any, out any, headers ...string) int {
	e.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.T.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.T.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatalf("read %s %s: %v", method, path, err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.T.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// Task is the REST view of a task, as tests read it.
type Task struct {
	ID               int              `json:"id"`
	ModelID          int              `json:"model_id"`
	Type             string           `json:"type"`
	Input            string           `json:"input"`
	Priority         int              `json:"priority"`
	Status           string           `json:"status"`
	Output           string           `json:"output"`
	Embedding        []float64        `json:"embedding"`
	Error            string           `json:"error"`
	Attempts         int              `json:"attempts"`
	PromptTokens     int              `json:"prompt_tokens"`
	CompletionTokens int              `json:"completion_tokens"`
	TotalTokens      int              `json:"total_tokens"`
	Caller           string           `json:"caller"`
	APIKeyID         *int             `json:"api_key_id"`
	Cost             float64          `json:"cost"`
	CostEstimated    bool             `json:"cost_estimated"`
	CreatedAt        time.Time        `json:"created_at"`
	StartedAt        *time.Time       `json:"started_at"`
	FinishedAt       *time.Time       `json:"finished_at"`
	RunAt            *time.Time       `json:"run_at"`
	PendingReason    string           `json:"pending_reason"`
	PendingDetail    string           `json:"pending_detail"`
	QueuePosition    int              `json:"queue_position"`
	AttemptHistory   []AttemptHistory `json:"attempt_history"`
}

// AttemptHistory is one attempt in the REST detail view.
type AttemptHistory struct {
	Number     int        `json:"number"`
	ModelID    int        `json:"model_id"`
	Status     string     `json:"status"`
	Error      string     `json:"error"`
	ErrorKind  string     `json:"error_kind"`
	Output     string     `json:"partial_output"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

// Model is the REST view of a model.
type Model struct {
	ID         int            `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Status     string         `json:"status"`
	MaxWorkers int            `json:"max_workers"`
	Config     map[string]any `json:"config"`
	Running    int            `json:"running"`
	Queued     int            `json:"queued"`
}

// ErrorBody is the REST error shape.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// CreateModel registers a model over REST and fails the test on error.
func (e *Env) CreateModel(name, typ string, maxWorkers int, cfg map[string]any) Model {
	e.T.Helper()
	var out struct {
		Data Model `json:"data"`
	}
	var eb ErrorBody
	body := map[string]any{"name": name, "type": typ, "max_workers": maxWorkers, "config": cfg}
	if code := e.Do("POST", "/api/v1/models", body, &out); code != http.StatusCreated {
		e.Do("POST", "/api/v1/models", body, &eb)
		e.T.Fatalf("create model %s: status %d", name, code)
	}
	return out.Data
}

// Simulator registers a simulator model with the given config.
func (e *Env) Simulator(name string, maxWorkers int, cfg map[string]any) Model {
	e.T.Helper()
	return e.CreateModel(name, "simulator", maxWorkers, cfg)
}

// Submit creates a task over REST and fails the test on error.
func (e *Env) Submit(body map[string]any) Task {
	e.T.Helper()
	var out struct {
		Data Task `json:"data"`
	}
	var raw json.RawMessage
	code := e.Do("POST", "/api/v1/tasks", body, &raw)
	if code != http.StatusCreated {
		e.T.Fatalf("create task: status %d: %s", code, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		e.T.Fatalf("decode task: %v", err)
	}
	return out.Data
}

// Task reads a task's detail view.
func (e *Env) Task(id int) Task {
	e.T.Helper()
	var out struct {
		Data Task `json:"data"`
	}
	if code := e.Do("GET", fmt.Sprintf("/api/v1/tasks/%d", id), nil, &out); code != http.StatusOK {
		e.T.Fatalf("get task %d: status %d", id, code)
	}
	return out.Data
}

// WaitTask polls until the task reaches status (or any terminal status
// when status is ""), failing after timeout.
func (e *Env) WaitTask(id int, status string, timeout time.Duration) Task {
	e.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		t := e.Task(id)
		if t.Status == status || (status == "" && (t.Status == "completed" || t.Status == "failed" || t.Status == "cancelled")) {
			return t
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("task %d is %s after %s, want %q (error %q, reason %q)", id, t.Status, timeout, status, t.Error, t.PendingReason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CountTasks counts tasks in the database.
func (e *Env) CountTasks() int {
	e.T.Helper()
	n, err := e.App.Store.Client.Task.Query().Count(context.Background())
	if err != nil {
		e.T.Fatalf("count tasks: %v", err)
	}
	return n
}

// LeakOptions are the goleak options for tests that start and stop
// processes: they ignore goroutines of third-party code that no API of
// ours can stop, each documented here.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// go-redis redials a server that refused a connection from a
		// goroutine of its pool that sleeps a second between tries and
		// then ends by itself, also after the client is closed (seen
		// after the tests that stop Redis, when they run last).
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	}
}
