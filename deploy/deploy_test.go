// Package deploy_test checks the deployment files as far as a machine
// without Docker or Prometheus can: docker-compose.yml parses, sets only
// environment variables the binary reads, with values it accepts; the
// alert rules and the Grafana dashboard parse and name only metrics that
// /metrics really exposes.
package deploy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/secrets"
)

type compose struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Build       any               `yaml:"build"`
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]any    `yaml:"depends_on"`
}

// envRead lists the environment variables the binary reads: everything
// config.Load asks its getenv for, plus main's own.
func envRead(t *testing.T) map[string]bool {
	t.Helper()
	read := map[string]bool{"CONFIG_FILE": true, "METRICS_ADDR": true}
	if _, err := config.Load("", func(k string) string { read[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	return read
}

var interpolation = regexp.MustCompile(`\$\{([A-Z_]+)(?::?[-?]([^}]*))?\}`)

// interpolate resolves ${X:-default} to its default and ${X:?msg} to a
// stand-in value, as docker compose would with an .env file.
func interpolate(v string, standIn map[string]string) string {
	return interpolation.ReplaceAllStringFunc(v, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		if s, ok := standIn[sub[1]]; ok {
			return s
		}
		if strings.Contains(m, ":?") {
			return "set-" + strings.ToLower(sub[1])
		}
		return sub[2]
	})
}

func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"mysql", "redis", "migrate", "api", "worker"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	api, worker := c.Services["api"], c.Services["worker"]
	if !slices.Equal(api.Command, []string{"serve", "--role", "api"}) || !slices.Equal(worker.Command, []string{"serve", "--role", "worker"}) {
		t.Errorf("api runs %v and worker %v", api.Command, worker.Command)
	}
	if len(worker.Ports) != 0 {
		t.Errorf("worker publishes ports %v: --scale worker=N would collide", worker.Ports)
	}
	if len(api.Ports) != 1 || !strings.HasSuffix(api.Ports[0], ":8080\"") && !strings.HasSuffix(api.Ports[0], ":8080") {
		t.Errorf("api ports = %v, want the dashboard and API on 8080", api.Ports)
	}
	if api.Build == nil || worker.Image != api.Image {
		t.Errorf("api must build the image that worker runs (api %q, worker %q)", api.Image, worker.Image)
	}
	for _, dep := range []string{"mysql", "redis", "migrate"} {
		if _, ok := worker.DependsOn[dep]; !ok {
			t.Errorf("worker does not wait for %s", dep)
		}
	}

	read := envRead(t)
	standIn := map[string]string{"ENCRYPTION_KEY": secrets.GenerateKey()}
	for _, name := range []string{"api", "worker", "migrate", "api-cluster", "worker-cluster"} {
		svc, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		checkServiceEnv(t, name, svc, read, standIn)
	}
	// The example .env names the variables the file requires.
	example, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range interpolation.FindAllStringSubmatch(string(raw), -1) {
		if strings.Contains(m[0], ":?") && !strings.Contains(string(example), m[1]+"=") {
			t.Errorf("docker-compose.yml requires %s, which deploy/.env.example does not list", m[1])
		}
	}
}

// checkServiceEnv: service name sets only variables the binary reads, the
// database, Redis, secrets and environment ones among them (stand-ins for
// ${VAR} from standIn), and they make a valid production configuration
// on MySQL and external Redis.
func checkServiceEnv(t *testing.T, name string, svc composeService, read map[string]bool, standIn map[string]string) {
	t.Helper()
	onCluster := strings.HasSuffix(name, "-cluster")
	env := map[string]string{}
	for k, v := range svc.Environment {
		if !read[k] {
			t.Errorf("service %s sets %s, which llm-scheduler does not read", name, k)
		}
		env[k] = interpolate(v, standIn)
	}
	redisKey := "REDIS_HOST"
	if onCluster {
		redisKey = "REDIS_CLUSTER_ADDRS"
	}
	for _, k := range []string{"DB_HOST", "DB_PASSWORD", redisKey, "REDIS_PASSWORD", "ENCRYPTION_KEY", "APP_ENV"} {
		if env[k] == "" {
			t.Errorf("service %s does not set %s", name, k)
		}
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Errorf("service %s: its environment is not a valid configuration: %v", name, err)
		return
	}
	if !cfg.Production() || !cfg.AuthEnabled() || cfg.Database.Driver != "mysql" || cfg.Redis.Embedded || cfg.Redis.Password == "" {
		t.Errorf("service %s runs %s, auth %v, db %s, embedded redis %v", name, cfg.App.Env, cfg.AuthEnabled(), cfg.Database.Driver, cfg.Redis.Embedded)
	}
	if onCluster && len(cfg.Redis.ClusterAddrs) != 6 {
		t.Errorf("service %s: redis.cluster_addrs = %v, want the six nodes of the cluster profile", name, cfg.Redis.ClusterAddrs)
	}
	if _, err := secrets.FromConfig(cfg); err != nil {
		t.Errorf("service %s: %v", name, err)
	}
}

var metricName = regexp.MustCompile(`\b(llmsched_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)

// exposed returns the metric names /metrics serves once tasks ran, failed,
// retried and were rejected.
func exposed(t *testing.T) map[string]bool {
	t.Helper()
	e := apptest.New(t, nil)
	m := e.Simulator("deploy-sim", 1, map[string]any{"latency_ms": 1, "fail_first_n": 1})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x"})
	e.WaitTask(task.ID, "completed", 30*time.Second)
	if code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m.ID, "type": "bad"}, nil); code != http.StatusBadRequest {
		t.Fatalf("bad submission: %d", code)
	}
	resp, err := http.Get(e.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			names[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+s] = true
				}
			}
		}
	}
	return names
}

func TestAlertsAndDashboardUseExposedMetrics(t *testing.T) {
	names := exposed(t)
	rawAlerts, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rawAlerts, &rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s has a rule without alert or expr", g.Name)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) < 5 {
		t.Fatalf("alerts.yml has %d rules", len(exprs))
	}
	rawDash, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(rawDash, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = true
			if !names[n] {
				t.Errorf("%q uses %s, which /metrics does not expose", e, n)
			}
		}
	}
	// Every series the issue asks for is on the dashboard or in an alert.
	for _, n := range []string{"llmsched_tasks", "llmsched_queue_depth", "llmsched_task_pickup_latency_seconds_bucket",
		"llmsched_task_run_duration_seconds_bucket", "llmsched_provider_errors_total", "llmsched_tokens_total",
		"llmsched_task_retries_total", "llmsched_rejected_submissions_total"} {
		if !used[n] {
			t.Errorf("%s is on no dashboard panel and in no alert", n)
		}
	}
}
