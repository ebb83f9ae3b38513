// Package config loads the scheduler's settings: built-in defaults, then an
// optional YAML file (config.yaml), then environment variables, then
// validation that names the offending key.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llmsched/llm-scheduler/internal/outbound"
)

// Config is the whole configuration. Its YAML keys, with their defaults,
// are documented in config.yaml.
type Config struct {
	App      App      `yaml:"app" json:"app"`
	Server   Server   `yaml:"server" json:"server"`
	Database Database `yaml:"database" json:"database"`
	Redis    Redis    `yaml:"redis" json:"redis"`
	Queue    Queue    `yaml:"queue" json:"queue"`
	Worker   Worker   `yaml:"worker" json:"worker"`
	Auth     Auth     `yaml:"auth" json:"auth"`
	Log      Log      `yaml:"log" json:"log"`
	// Providers holds what models may reach.
	Providers Providers `yaml:"providers" json:"providers"`
	// Webhooks controls completion webhooks (docs/webhooks.md).
	Webhooks Webhooks `yaml:"webhooks" json:"webhooks"`

	// Source says where the configuration came from (a file path, or
	// "defaults"); it is not read from YAML.
	Source string `yaml:"-" json:"source"`
}

// App names the deployment.
type App struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version"`
	// Env is development or production; production turns auth on by default
	// and switches logs to JSON.
	Env string `yaml:"env" json:"env"`
}

// Server is the HTTP listener.
type Server struct {
	// Host is the listen host. Empty: 127.0.0.1 while auth is off (an
	// unauthenticated scheduler is not reachable from the network), 0.0.0.0
	// with auth on. Set it to listen elsewhere.
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port" json:"port"`
	// CORSOrigins and the websocket Origin check allow only these origins
	// (besides same-origin requests). Empty means same-origin only.
	CORSOrigins []string `yaml:"cors_origins" json:"cors_origins"`
	// ShutdownGrace is how long SIGTERM waits for running tasks.
	ShutdownGrace Duration `yaml:"shutdown_grace" json:"shutdown_grace"`
	// MaxBodyBytes bounds any request body.
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes"`
	// Introspection enables GraphQL introspection (default: on outside production).
	Introspection *bool `yaml:"introspection" json:"introspection"`
	// OpenAIQueueTimeout is how long a request to the OpenAI-compatible
	// front door (/v1) waits for its task to start, unless it sends
	// X-Queue-Timeout; past it the task is cancelled.
	OpenAIQueueTimeout Duration `yaml:"openai_queue_timeout" json:"openai_queue_timeout"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" json:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, headers and body
	// (http.Server.ReadTimeout). net/http clears it once the body is read,
	// so it does not cut streamed answers (SSE) or websockets; there is no
	// WriteTimeout, which would.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// GraphQLTimeout is the time budget of one GraphQL query or mutation
	// (subscriptions are not bounded); past it the operation is cancelled
	// and answers TIMEOUT.
	GraphQLTimeout Duration `yaml:"graphql_timeout" json:"graphql_timeout"`
	// DrainWindow is how long an api process keeps answering after
	// SIGTERM, with health and writes at 503 so that load balancers take it
	// out, before it stops accepting connections.
	DrainWindow Duration `yaml:"drain_window" json:"drain_window"`
}

// Database is the system of record.
type Database struct {
	// Driver is mysql or sqlite. Without a config file and without DB_* in
	// the environment it is sqlite (the embedded default).
	Driver   string `yaml:"driver" json:"driver"`
	Host     string `yaml:"host" json:"host"`
	Port     int    `yaml:"port" json:"port"`
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"-"`
	Database string `yaml:"database" json:"database"`
	// SQLitePath is the embedded database file.
	SQLitePath   string `yaml:"sqlite_path" json:"sqlite_path"`
	MaxOpenConns int    `yaml:"max_open_conns" json:"max_open_conns"`
	// AutoMigrate migrates the schema at start (always on for sqlite).
	AutoMigrate bool `yaml:"auto_migrate" json:"auto_migrate"`
}

// Redis carries dispatch state and events.
type Redis struct {
	// Embedded runs an in-process Redis (miniredis). It is the default when
	// no config file and no REDIS_* environment variable is given.
	Embedded bool   `yaml:"embedded" json:"embedded"`
	Host     string `yaml:"host" json:"host"`
	Port     int    `yaml:"port" json:"port"`
	DB       int    `yaml:"db" json:"db"`
	Password string `yaml:"password" json:"-"`
	// KeyPrefix namespaces the scheduler's own keys (leases, parked tasks,
	// events) so several deployments or tests can share one Redis.
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
	// SentinelMaster and SentinelAddrs select Redis Sentinel.
	SentinelMaster   string   `yaml:"sentinel_master" json:"sentinel_master"`
	SentinelAddrs    []string `yaml:"sentinel_addrs" json:"sentinel_addrs"`
	SentinelPassword string   `yaml:"sentinel_password" json:"-"`
	// ClusterAddrs selects Redis Cluster.
	ClusterAddrs []string `yaml:"cluster_addrs" json:"cluster_addrs"`
	// PoolSize bounds the connections of one process (per node on a
	// Cluster). Every worker slot, API request, asynq's dequeue loop and the
	// event outbox draw from it: too small a pool queues them behind each
	// other under load.
	PoolSize int `yaml:"pool_size" json:"pool_size"`
}

// Queue holds the scheduling rules.
type Queue struct {
	// MaxQueueSize bounds the backlog (pending tasks), per model and in total.
	MaxQueueSize int      `yaml:"max_queue_size" json:"max_queue_size"`
	TaskTimeout  Duration `yaml:"task_timeout" json:"task_timeout"`
	MaxRetries   int      `yaml:"max_retries" json:"max_retries"`
	// RetryDelay is the first backoff; each retry doubles it, with jitter, up
	// to MaxRetryDelay.
	RetryDelay    Duration `yaml:"retry_delay" json:"retry_delay"`
	MaxRetryDelay Duration `yaml:"max_retry_delay" json:"max_retry_delay"`
	// Strategy is strict (high drains before medium before low) or weighted
	// (so low never starves: asynq's weights across models, and smooth
	// weighted round robin between priority bands inside each model's
	// parked queue; see jobs.Order).
	Strategy string         `yaml:"strategy" json:"strategy"`
	Weights  map[string]int `yaml:"weights" json:"weights"`
	// MaxInputBytes bounds a task's input.
	MaxInputBytes int `yaml:"max_input_bytes" json:"max_input_bytes"`
	// MaxBatchSize bounds createTasks.
	MaxBatchSize int `yaml:"max_batch_size" json:"max_batch_size"`
	// PollInterval is how often an idle worker looks for work when it
	// cannot be woken (IdleCheckInterval 0).
	PollInterval Duration `yaml:"poll_interval" json:"poll_interval"`
	// IdleCheckInterval turns on wake-ups: an idle worker stops polling
	// Redis, is woken (pub/sub) when a task is enqueued for it, and looks
	// anyway this often (retries coming due, a missed wake-up). 0 turns
	// wake-ups off: idle workers poll every PollInterval.
	IdleCheckInterval Duration `yaml:"idle_check_interval" json:"idle_check_interval"`
	// ReconcileInterval is how often the database and Redis are compared.
	ReconcileInterval Duration `yaml:"reconcile_interval" json:"reconcile_interval"`
	// LeaseTTL is how long a model slot survives without a heartbeat: the
	// time after which a crashed worker's task runs again.
	LeaseTTL Duration `yaml:"lease_ttl" json:"lease_ttl"`
	// LeaderLeaseTTL is how long the reconciler's leader lease survives
	// its holder: a killed leader is replaced after at most this long (a
	// stopped one at once), and the leader renews it every third of it.
	LeaderLeaseTTL Duration `yaml:"leader_lease_ttl" json:"leader_lease_ttl"`
	// MaxScheduleAhead bounds how far in the future a task's run_at may be.
	MaxScheduleAhead Duration `yaml:"max_schedule_ahead" json:"max_schedule_ahead"`
	// ScheduleCheckInterval is how often every process looks in the
	// database for scheduled tasks that came due (tasks scheduled by this
	// process are also timed exactly).
	ScheduleCheckInterval Duration `yaml:"schedule_check_interval" json:"schedule_check_interval"`
}

// Worker sizes the worker processes.
type Worker struct {
	// DefaultWorkers is a new model's max_workers when none is given.
	DefaultWorkers int `yaml:"default_workers" json:"default_workers"`
	// MaxWorkers bounds concurrent tasks in one worker process, and any
	// model's max_workers.
	MaxWorkers int `yaml:"max_workers" json:"max_workers"`
}

// Auth controls API keys and secrets at rest.
type Auth struct {
	// Enabled requires an API key on every request. Default: on in production.
	Enabled *bool `yaml:"enabled" json:"enabled"`
	// EncryptionKey (32 bytes, base64) encrypts provider secrets at rest.
	EncryptionKey string `yaml:"encryption_key" json:"-"`
	// PreviousEncryptionKeys still decrypt during a key rotation.
	PreviousEncryptionKeys []string `yaml:"previous_encryption_keys" json:"-"`
}

// Providers controls outbound connections to model endpoints.
type Providers struct {
	// AllowHosts are destinations a model may reach although the outbound
	// policy refuses them by default (link-local and cloud-metadata
	// addresses, the scheduler's own listen address): host names, IPs or
	// CIDRs. Loopback and private ranges need no entry.
	AllowHosts []string `yaml:"allow_hosts" json:"allow_hosts"`
}

// Webhooks controls completion webhooks: where they may go, how they are
// signed when the submitting API key has no secret of its own, and how
// they are retried.
type Webhooks struct {
	// AllowPrivate lets callback URLs reach loopback and private addresses
	// (127.0.0.0/8, 10/8, 172.16/12, 192.168/16, 100.64/10, ::1, fc00::/7).
	// Off by default, so that a caller cannot make the scheduler probe its
	// internal network. Link-local and cloud-metadata addresses and the
	// scheduler's own listen address stay refused either way.
	AllowPrivate bool `yaml:"allow_private" json:"allow_private"`
	// Secret signs the webhooks of tasks whose API key has no webhook
	// secret (auth off, or a key created before webhooks). Without it such
	// a task's callback_url is refused at create.
	Secret string `yaml:"secret" json:"-"`
	// Timeout bounds one POST (connect, send, answer).
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// RetryDelay is the first retry's delay; each retry doubles it, with
	// jitter, up to MaxRetryDelay.
	RetryDelay    Duration `yaml:"retry_delay" json:"retry_delay"`
	MaxRetryDelay Duration `yaml:"max_retry_delay" json:"max_retry_delay"`
	// MaxAge is how long a delivery is retried before it is given up.
	MaxAge Duration `yaml:"max_age" json:"max_age"`
	// PollInterval is how often each worker process looks for due
	// deliveries (a terminal task of its own process wakes it at once).
	PollInterval Duration `yaml:"poll_interval" json:"poll_interval"`
	// Concurrency bounds the POSTs one process has in flight.
	Concurrency int `yaml:"concurrency" json:"concurrency"`
}

// Outbound builds the outbound policy of this configuration: the allowed
// hosts and the scheduler's own listen address.
// extraSelf are further own addresses (the listener's actual one, when it
// differs from the configured one).
func (c *Config) Outbound(extraSelf ...string) (*outbound.Policy, error) {
	var self []string
	if c.Server.Port > 0 {
		self = append(self, c.Addr())
	}
	return outbound.New(outbound.Config{AllowHosts: c.Providers.AllowHosts, Self: append(self, extraSelf...)})
}

// Log controls logging.
type Log struct {
	Level  string `yaml:"level" json:"level"`
	Format string `yaml:"format" json:"format"` // text or json; default by app.env
}

// Duration is a time.Duration written as "300s" in YAML.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes "300s".
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

// UnmarshalYAML reads "300s", "1m" or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		return Duration(secs * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like \"300s\"", s)
	}
	return Duration(v), nil
}

// Embedded reports whether this configuration runs without external services.
func (c *Config) Embedded() bool { return c.Database.Driver == "sqlite" && c.Redis.Embedded }

// Production reports whether app.env is production.
func (c *Config) Production() bool { return c.App.Env == "production" }

// AuthEnabled reports whether API keys are required.
func (c *Config) AuthEnabled() bool {
	if c.Auth.Enabled != nil {
		return *c.Auth.Enabled
	}
	return c.Production()
}

// IntrospectionEnabled reports whether GraphQL introspection is served.
func (c *Config) IntrospectionEnabled() bool {
	if c.Server.Introspection != nil {
		return *c.Server.Introspection
	}
	return !c.Production()
}

// Addr is the HTTP listen address.
func (c *Config) Addr() string { return fmt.Sprintf("%s:%d", c.Server.Host, c.Server.Port) }

// Defaults returns the defaults that config.yaml shows. Embedded selects
// the embedded database and Redis.
func Defaults(embedded bool) Config {
	c := Config{
		App: App{Name: "LLM Scheduler", Version: "1.0.0", Env: "development"},
		Server: Server{Port: 8080, ShutdownGrace: Duration(30 * time.Second), MaxBodyBytes: 8 << 20,
			OpenAIQueueTimeout: Duration(5 * time.Minute),
			ReadHeaderTimeout:  Duration(10 * time.Second), ReadTimeout: Duration(30 * time.Second),
			IdleTimeout: Duration(60 * time.Second), GraphQLTimeout: Duration(30 * time.Second),
			DrainWindow: Duration(5 * time.Second)},
		Database: Database{
			Driver: "mysql", Host: "localhost", Port: 3306, Username: "llm_user",
			Password: "llm_password", Database: "llm_scheduler",
			SQLitePath: filepath.Join("data", "llm-scheduler.db"), MaxOpenConns: 32,
		},
		Redis: Redis{Host: "localhost", Port: 6379, DB: 0, KeyPrefix: "llmsched", PoolSize: 100},
		Queue: Queue{
			MaxQueueSize: 10000, TaskTimeout: Duration(300 * time.Second), MaxRetries: 3,
			RetryDelay: Duration(60 * time.Second), MaxRetryDelay: Duration(time.Hour),
			Strategy: "strict", Weights: map[string]int{"high": 6, "medium": 3, "low": 1},
			MaxInputBytes: 1 << 20, MaxBatchSize: 1000, PollInterval: Duration(4 * time.Millisecond),
			IdleCheckInterval: Duration(time.Second),
			ReconcileInterval: Duration(5 * time.Second), LeaseTTL: Duration(30 * time.Second),
			LeaderLeaseTTL:   Duration(15 * time.Second),
			MaxScheduleAhead: Duration(30 * 24 * time.Hour), ScheduleCheckInterval: Duration(500 * time.Millisecond),
		},
		Worker: Worker{DefaultWorkers: 5, MaxWorkers: 50},
		Webhooks: Webhooks{Timeout: Duration(10 * time.Second), RetryDelay: Duration(10 * time.Second),
			MaxRetryDelay: Duration(time.Hour), MaxAge: Duration(24 * time.Hour),
			PollInterval: Duration(time.Second), Concurrency: 8},
		Log:    Log{Level: "info"},
		Source: "defaults",
	}
	if embedded {
		c.Database.Driver = "sqlite"
		c.Redis.Embedded = true
	}
	return c
}

// Load reads the configuration. path may be empty: then no file is read and,
// unless the environment names a database or Redis, the embedded default runs.
// getenv is os.Getenv (nil means it); it cannot tell a variable set to the
// empty string from an unset one, so production uses LoadLookup.
func Load(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		return LoadLookup(path, os.LookupEnv)
	}
	return LoadLookup(path, func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	})
}

// LoadLookup is Load with os.LookupEnv's view of the environment: a
// password or key prefix variable that is set, even to the empty string,
// sets its value (DB_PASSWORD= clears the default password, for MariaDB's
// root without one). Other variables set to the empty string are left
// alone: for them the empty string is no value.
func LoadLookup(path string, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	getenv := func(k string) string {
		v, _ := lookup(k)
		return v
	}
	var c Config
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		c = Defaults(false)
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
		c.Source = path
	} else {
		external := false
		for _, k := range []string{"DB_HOST", "DB_DRIVER", "REDIS_HOST"} {
			if getenv(k) != "" {
				external = true
			}
		}
		c = Defaults(!external)
		if getenv("DB_DRIVER") == "" && getenv("DB_HOST") == "" {
			c.Database.Driver = "sqlite"
		}
		if getenv("REDIS_HOST") == "" {
			c.Redis.Embedded = getenv("DB_DRIVER") == "" && getenv("DB_HOST") == ""
		}
	}
	if err := applyEnv(&c, lookup); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// applyEnv overrides settings with environment variables (README.md lists
// them), section by section, and returns every malformed value.
func applyEnv(c *Config, lookup func(string) (string, bool)) error {
	e := &envReader{lookup: lookup}
	e.applyServer(c)
	e.applyDatabase(c)
	e.applyRedis(c)
	e.applyQueue(c)
	e.applyRest(c)
	return errors.Join(e.errs...)
}

// envReader reads environment variables into settings and collects the
// values it cannot parse, each naming its variable.
type envReader struct {
	lookup func(string) (string, bool)
	errs   []error
}

func (e *envReader) get(key string) string {
	v, _ := e.lookup(key)
	return v
}

// str sets dst when the variable holds a non-empty value.
func (e *envReader) str(key string, dst *string) {
	if v := e.get(key); v != "" {
		*dst = v
	}
}

// orEmpty is for values where the empty string means something (no
// password, no key prefix): set, even to "", it sets the value.
func (e *envReader) orEmpty(key string, dst *string) {
	if v, ok := e.lookup(key); ok {
		*dst = v
	}
}

func (e *envReader) list(key string, dst *[]string) {
	if v := e.get(key); v != "" {
		*dst = splitList(v)
	}
}

func (e *envReader) num(key string, dst *int) {
	if v := e.get(key); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("environment %s must be an integer, got %q", key, v))
			return
		}
		*dst = n
	}
}

func (e *envReader) flag(key string, dst *bool) {
	if b, ok := e.parseFlag(key); ok {
		*dst = b
	}
}

// optionalFlag is flag for settings whose unset state means "decide from
// other settings".
func (e *envReader) optionalFlag(key string, dst **bool) {
	if b, ok := e.parseFlag(key); ok {
		*dst = &b
	}
}

// parseFlag reports the variable's boolean value and whether it holds one.
func (e *envReader) parseFlag(key string) (value, ok bool) {
	v := e.get(key)
	if v == "" {
		return false, false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("environment %s must be true or false, got %q", key, v))
		return false, false
	}
	return b, true
}

func (e *envReader) duration(key string, dst *Duration) {
	if v := e.get(key); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("environment %s: %w", key, err))
			return
		}
		*dst = d
	}
}

func (e *envReader) applyServer(c *Config) {
	e.str("APP_ENV", &c.App.Env)
	e.str("SERVER_HOST", &c.Server.Host)
	e.num("SERVER_PORT", &c.Server.Port)
	e.list("CORS_ORIGINS", &c.Server.CORSOrigins)
	e.duration("SHUTDOWN_GRACE", &c.Server.ShutdownGrace)
	e.duration("OPENAI_QUEUE_TIMEOUT", &c.Server.OpenAIQueueTimeout)
	e.duration("SERVER_DRAIN_WINDOW", &c.Server.DrainWindow)
}

func (e *envReader) applyDatabase(c *Config) {
	e.str("DB_DRIVER", &c.Database.Driver)
	e.str("DB_HOST", &c.Database.Host)
	e.num("DB_PORT", &c.Database.Port)
	e.str("DB_USER", &c.Database.Username)
	e.orEmpty("DB_PASSWORD", &c.Database.Password)
	e.str("DB_NAME", &c.Database.Database)
	e.str("DB_SQLITE_PATH", &c.Database.SQLitePath)
}

func (e *envReader) applyRedis(c *Config) {
	if v := e.get("REDIS_HOST"); v != "" {
		c.Redis.Host = v
		c.Redis.Embedded = false
	}
	e.num("REDIS_PORT", &c.Redis.Port)
	e.num("REDIS_DB", &c.Redis.DB)
	e.orEmpty("REDIS_PASSWORD", &c.Redis.Password)
	e.orEmpty("REDIS_KEY_PREFIX", &c.Redis.KeyPrefix)
	e.str("REDIS_SENTINEL_MASTER", &c.Redis.SentinelMaster)
	e.list("REDIS_SENTINEL_ADDRS", &c.Redis.SentinelAddrs)
	e.list("REDIS_CLUSTER_ADDRS", &c.Redis.ClusterAddrs)
}

func (e *envReader) applyQueue(c *Config) {
	e.num("QUEUE_MAX_QUEUE_SIZE", &c.Queue.MaxQueueSize)
	e.num("QUEUE_MAX_RETRIES", &c.Queue.MaxRetries)
	e.str("QUEUE_STRATEGY", &c.Queue.Strategy)
	e.duration("QUEUE_TASK_TIMEOUT", &c.Queue.TaskTimeout)
	e.duration("QUEUE_RETRY_DELAY", &c.Queue.RetryDelay)
	e.duration("QUEUE_POLL_INTERVAL", &c.Queue.PollInterval)
	e.duration("QUEUE_IDLE_CHECK_INTERVAL", &c.Queue.IdleCheckInterval)
	e.duration("QUEUE_LEADER_LEASE_TTL", &c.Queue.LeaderLeaseTTL)
}

// applyRest reads the worker, auth, providers, webhooks and log settings.
func (e *envReader) applyRest(c *Config) {
	e.num("WORKER_MAX_WORKERS", &c.Worker.MaxWorkers)
	e.num("WORKER_DEFAULT_WORKERS", &c.Worker.DefaultWorkers)
	e.optionalFlag("AUTH_ENABLED", &c.Auth.Enabled)
	e.str("ENCRYPTION_KEY", &c.Auth.EncryptionKey)
	e.list("PROVIDERS_ALLOW_HOSTS", &c.Providers.AllowHosts)
	e.str("WEBHOOKS_SECRET", &c.Webhooks.Secret)
	e.flag("WEBHOOKS_ALLOW_PRIVATE", &c.Webhooks.AllowPrivate)
	e.str("LOG_LEVEL", &c.Log.Level)
	e.str("LOG_FORMAT", &c.Log.Format)
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate checks every setting and returns all problems, each naming its key.
// It also fills the defaults that depend on other settings (app.env,
// server.host).
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	c.validateDatabase(&p)
	c.validateRedis(&p)
	c.validateQueue(&p)
	c.validateWorkerAndLog(&p)
	c.validateWebhooks(&p)
	return errors.Join(p...)
}

// problems collects what Validate finds wrong.
type problems []error

func (p *problems) bad(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// validateServer checks app.env and the server section.
func (c *Config) validateServer(p *problems) {
	c.App.Env = cmp.Or(c.App.Env, "development")
	if c.App.Env != "development" && c.App.Env != "production" && c.App.Env != "test" {
		p.bad("app.env must be development, production or test, got %q", c.App.Env)
	}
	if c.Server.Host == "" {
		c.Server.Host = "127.0.0.1"
		if c.AuthEnabled() {
			c.Server.Host = "0.0.0.0"
		}
	}
	for _, o := range c.Server.CORSOrigins {
		if u, err := url.Parse(o); o == "*" || o == "null" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Host == "*" || (u.Path != "" && u.Path != "/") {
			p.bad("server.cors_origins must list exact origins like https://dashboard.example.com, got %q", o)
		}
	}
	if c.Production() && !c.AuthEnabled() {
		p.bad("auth.enabled must not be false when app.env is production: every request would act as admin")
	}
	if c.Server.Port < 0 || c.Server.Port > 65535 {
		p.bad("server.port must be between 0 and 65535, got %d", c.Server.Port)
	}
	if c.Server.MaxBodyBytes <= 0 {
		p.bad("server.max_body_bytes must be positive, got %d", c.Server.MaxBodyBytes)
	}
	if c.Server.ShutdownGrace < 0 {
		p.bad("server.shutdown_grace must not be negative, got %s", c.Server.ShutdownGrace)
	}
	if d := c.Server.OpenAIQueueTimeout.D(); d <= 0 || d > 24*time.Hour {
		p.bad("server.openai_queue_timeout must be more than 0s and at most 24h, got %s", c.Server.OpenAIQueueTimeout)
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"server.read_header_timeout", c.Server.ReadHeaderTimeout}, {"server.read_timeout", c.Server.ReadTimeout},
		{"server.idle_timeout", c.Server.IdleTimeout}, {"server.graphql_timeout", c.Server.GraphQLTimeout},
	} {
		if d.v <= 0 {
			p.bad("%s must be positive, got %s", d.key, d.v)
		}
	}
	if c.Server.DrainWindow < 0 {
		p.bad("server.drain_window must not be negative, got %s", c.Server.DrainWindow)
	}
}

func (c *Config) validateDatabase(p *problems) {
	switch c.Database.Driver {
	case "sqlite":
		if c.Database.SQLitePath == "" {
			p.bad("database.sqlite_path must be set when database.driver is sqlite")
		}
	case "mysql":
		if c.Database.Host == "" {
			p.bad("database.host must be set when database.driver is mysql")
		}
		if c.Database.Port <= 0 || c.Database.Port > 65535 {
			p.bad("database.port must be between 1 and 65535, got %d", c.Database.Port)
		}
		if c.Database.Database == "" {
			p.bad("database.database must be set when database.driver is mysql")
		}
	default:
		p.bad("database.driver must be mysql or sqlite, got %q", c.Database.Driver)
	}
	if c.Database.MaxOpenConns <= 0 {
		p.bad("database.max_open_conns must be positive, got %d", c.Database.MaxOpenConns)
	}
}

func (c *Config) validateRedis(p *problems) {
	if !c.Redis.Embedded && c.Redis.SentinelMaster == "" && len(c.Redis.ClusterAddrs) == 0 {
		if c.Redis.Host == "" {
			p.bad("redis.host must be set unless redis.embedded is true")
		}
		if c.Redis.Port <= 0 || c.Redis.Port > 65535 {
			p.bad("redis.port must be between 1 and 65535, got %d", c.Redis.Port)
		}
	}
	if c.Redis.PoolSize <= 0 {
		p.bad("redis.pool_size must be positive, got %d", c.Redis.PoolSize)
	}
	if c.Redis.DB < 0 || c.Redis.DB > 15 {
		p.bad("redis.db must be between 0 and 15, got %d", c.Redis.DB)
	}
	if c.Redis.SentinelMaster != "" && len(c.Redis.SentinelAddrs) == 0 {
		p.bad("redis.sentinel_addrs must list at least one address when redis.sentinel_master is set")
	}
	if c.Redis.KeyPrefix == "" {
		p.bad("redis.key_prefix must not be empty")
	} else if strings.ContainsAny(c.Redis.KeyPrefix, "{}") {
		// Keys carry Redis Cluster hash tags built on the prefix
		// ({prefix:model:N}, {prefix:epoch}): a brace in it would move keys
		// a script reads together into different hash slots.
		p.bad("redis.key_prefix must not contain '{' or '}', got %q", c.Redis.KeyPrefix)
	}
}

func (c *Config) validateQueue(p *problems) {
	q := c.Queue
	if q.MaxQueueSize < 1 {
		p.bad("queue.max_queue_size must be at least 1, got %d", q.MaxQueueSize)
	}
	if q.TaskTimeout <= 0 {
		p.bad("queue.task_timeout must be positive, got %s", q.TaskTimeout)
	}
	if q.MaxRetries < 0 || q.MaxRetries > 100 {
		p.bad("queue.max_retries must be between 0 and 100, got %d", q.MaxRetries)
	}
	if q.RetryDelay < 0 {
		p.bad("queue.retry_delay must not be negative, got %s", q.RetryDelay)
	}
	if q.MaxRetryDelay < q.RetryDelay {
		p.bad("queue.max_retry_delay must be at least queue.retry_delay (%s), got %s", q.RetryDelay, q.MaxRetryDelay)
	}
	if q.Strategy != "strict" && q.Strategy != "weighted" {
		p.bad("queue.strategy must be strict or weighted, got %q", q.Strategy)
	}
	for _, name := range []string{"high", "medium", "low"} {
		if q.Strategy == "weighted" && q.Weights[name] < 1 {
			p.bad("queue.weights.%s must be at least 1 when queue.strategy is weighted, got %d", name, q.Weights[name])
		}
	}
	if q.MaxInputBytes < 1 {
		p.bad("queue.max_input_bytes must be positive, got %d", q.MaxInputBytes)
	}
	if q.MaxBatchSize < 1 {
		p.bad("queue.max_batch_size must be positive, got %d", q.MaxBatchSize)
	}
	if q.PollInterval <= 0 || q.PollInterval.D() > 5*time.Second {
		p.bad("queue.poll_interval must be between 1ms and 5s, got %s", q.PollInterval)
	}
	if q.IdleCheckInterval < 0 || q.IdleCheckInterval.D() > time.Minute ||
		(q.IdleCheckInterval > 0 && q.IdleCheckInterval.D() < 10*time.Millisecond) {
		p.bad("queue.idle_check_interval must be 0 (wake-ups off) or between 10ms and 1m, got %s", q.IdleCheckInterval)
	}
	if q.ReconcileInterval <= 0 {
		p.bad("queue.reconcile_interval must be positive, got %s", q.ReconcileInterval)
	}
	if q.LeaseTTL.D() < time.Second {
		p.bad("queue.lease_ttl must be at least 1s, got %s", q.LeaseTTL)
	}
	if q.LeaderLeaseTTL.D() < time.Second {
		p.bad("queue.leader_lease_ttl must be at least 1s, got %s", q.LeaderLeaseTTL)
	}
	if q.MaxScheduleAhead.D() < time.Minute || q.MaxScheduleAhead.D() > 10*365*24*time.Hour {
		p.bad("queue.max_schedule_ahead must be between 1m and 87600h (10 years), got %s", q.MaxScheduleAhead)
	}
	if q.ScheduleCheckInterval.D() < 10*time.Millisecond || q.ScheduleCheckInterval.D() > time.Minute {
		p.bad("queue.schedule_check_interval must be between 10ms and 1m, got %s", q.ScheduleCheckInterval)
	}
}

// validateWorkerAndLog checks the worker, log and providers sections.
func (c *Config) validateWorkerAndLog(p *problems) {
	if c.Worker.MaxWorkers < 1 || c.Worker.MaxWorkers > 10000 {
		p.bad("worker.max_workers must be between 1 and 10000, got %d", c.Worker.MaxWorkers)
	}
	if c.Worker.DefaultWorkers < 1 || c.Worker.DefaultWorkers > c.Worker.MaxWorkers {
		p.bad("worker.default_workers must be between 1 and worker.max_workers (%d), got %d", c.Worker.MaxWorkers, c.Worker.DefaultWorkers)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.bad("log.level must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "" && c.Log.Format != "text" && c.Log.Format != "json" {
		p.bad("log.format must be text or json, got %q", c.Log.Format)
	}
	if _, err := outbound.New(outbound.Config{AllowHosts: c.Providers.AllowHosts}); err != nil {
		*p = append(*p, err)
	}
}

func (c *Config) validateWebhooks(p *problems) {
	w := c.Webhooks
	if w.Timeout.D() < 10*time.Millisecond || w.Timeout.D() > 5*time.Minute {
		p.bad("webhooks.timeout must be between 10ms and 5m, got %s", w.Timeout)
	}
	if w.RetryDelay.D() < time.Millisecond || w.RetryDelay.D() > w.MaxRetryDelay.D() {
		p.bad("webhooks.retry_delay must be at least 1ms and at most webhooks.max_retry_delay (%s), got %s", w.MaxRetryDelay, w.RetryDelay)
	}
	if w.MaxAge.D() < time.Second || w.MaxAge.D() > 30*24*time.Hour {
		p.bad("webhooks.max_age must be between 1s and 720h, got %s", w.MaxAge)
	}
	if w.PollInterval.D() < 10*time.Millisecond || w.PollInterval.D() > time.Minute {
		p.bad("webhooks.poll_interval must be between 10ms and 1m, got %s", w.PollInterval)
	}
	if w.Concurrency < 1 || w.Concurrency > 1000 {
		p.bad("webhooks.concurrency must be between 1 and 1000, got %d", w.Concurrency)
	}
	if w.Secret != "" && len(w.Secret) < 16 {
		p.bad("webhooks.secret must be at least 16 characters, got %d", len(w.Secret))
	}
}

// WebhookPolicy builds the outbound policy of callback URLs: the
// providers' rules (link-local and cloud-metadata addresses, the
// scheduler's own listen address refused) plus, unless
// webhooks.allow_private, loopback and private addresses refused.
// providers.allow_hosts does not apply to webhooks.
func (c *Config) WebhookPolicy(extraSelf ...string) (*outbound.Policy, error) {
	var self []string
	if c.Server.Port > 0 {
		self = append(self, c.Addr())
	}
	return outbound.New(outbound.Config{Self: append(self, extraSelf...), DenyPrivate: !c.Webhooks.AllowPrivate,
		Hint: "webhooks.allow_private allows loopback and private addresses"})
}
