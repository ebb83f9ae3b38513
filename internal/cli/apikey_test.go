package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// adminCLI runs the binary's database commands (apikey) with a config
// file naming the scenario's database.
func adminCLI(t *testing.T, cfgPath string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(cliBinary(t), append(args, "--config", cfgPath)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	out, errb := &strings.Builder{}, &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	if ee := new(exec.ExitError); errors.As(err, &ee) {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	t.Logf("llm-scheduler %s -> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

// databaseConfig writes a configuration file with the scenario's database.
func databaseConfig(t *testing.T, c *config.Config) string {
	t.Helper()
	d := c.Database
	var y string
	if d.Driver == "sqlite" {
		y = fmt.Sprintf("database: {driver: sqlite, sqlite_path: %q}\n", d.SQLitePath)
	} else {
		y = fmt.Sprintf("database: {driver: mysql, host: %q, port: %d, username: %q, password: %q, database: %q}\n",
			d.Host, d.Port, d.Username, d.Password, d.Database)
	}
	if c.Auth.EncryptionKey != "" {
		y += fmt.Sprintf("auth: {encryption_key: %q}\n", c.Auth.EncryptionKey)
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type keyView struct {
	ID             int
	Name           string
	Weight         int
	TokensPerDay   *int `json:"tokens_per_day"`
	TokensPerMonth *int `json:"tokens_per_month"`
	ModelBudgets   []struct {
		ModelID        int  `json:"model_id"`
		TokensPerDay   *int `json:"tokens_per_day"`
		TokensPerMonth *int `json:"tokens_per_month"`
	} `json:"model_budgets"`
}

func intp(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}

// TestCLIAPIKeyWeightAndBudgets: `apikey create` and `apikey update`, run
// as separate processes on the scheduler's database, set a key's weight,
// day and month caps and model caps, which the running server then
// reports over REST and applies (a submission over the day cap gets 429).
// Bad values exit non-zero naming the flag, and write nothing.
func TestCLIAPIKeyWeightAndBudgets(t *testing.T) {
	f := newKeyFixture(t)
	res := adminCLI(t, f.cfg, "apikey", "create", "--name", "team-a", "--role", "submitter", "--weight", "3",
		"--tokens-per-day", "1000", "--tokens-per-month", "50000", "--model-budget", fmt.Sprintf("%d:day=100,month=5000", f.mid))
	m, idm := keySecretRe.FindStringSubmatch(res.stdout), keyIDRe.FindStringSubmatch(res.stdout)
	if res.code != 0 || m == nil || idm == nil || !strings.Contains(res.stdout, "weight 3") {
		t.Fatalf("create team-a: exit %d", res.code)
	}
	teamKey := m[1]
	id, _ := strconv.Atoi(idm[1])
	k := f.key(id)
	if k.Weight != 3 || intp(k.TokensPerDay) != "1000" || intp(k.TokensPerMonth) != "50000" || len(k.ModelBudgets) != 1 ||
		k.ModelBudgets[0].ModelID != f.mid || intp(k.ModelBudgets[0].TokensPerDay) != "100" || intp(k.ModelBudgets[0].TokensPerMonth) != "5000" {
		t.Fatalf("after create: %+v", k)
	}

	// The server applies the model cap the CLI set: an input estimated
	// above 100 tokens on this model is refused.
	var refused struct {
		Error struct{ Code, Message string }
	}
	long := strings.Repeat("many words here ", 60)
	if code := f.env.Do("POST", "/api/v1/tasks", map[string]any{"model_id": f.mid, "type": "text-generation", "input": long}, &refused,
		"Authorization", "Bearer "+teamKey); code != http.StatusTooManyRequests || refused.Error.Code != "BUDGET_EXCEEDED" {
		t.Fatalf("submission over the CLI-set model cap: %d %+v, want 429 BUDGET_EXCEEDED", code, refused)
	}

	res = adminCLI(t, f.cfg, "apikey", "update", strconv.Itoa(id), "--weight", "5", "--tokens-per-day", "0", "--no-model-budgets")
	if res.code != 0 || !strings.Contains(res.stdout, "weight 5") {
		t.Fatalf("update: exit %d", res.code)
	}
	k = f.key(id)
	if k.Weight != 5 || k.TokensPerDay != nil || intp(k.TokensPerMonth) != "50000" || len(k.ModelBudgets) != 0 {
		t.Fatalf("after update (weight 5, day cap removed, month kept, model caps removed): %+v", k)
	}
	f.assertBadValuesWriteNothing(id)
}

var (
	keySecretRe = regexp.MustCompile(`(?m)^\s+(\S{20,})\s*$`)
	keyIDRe     = regexp.MustCompile(`created API key (\d+)`)
)

// keyFixture is a running server with auth on, an admin key created by
// the CLI, a config file naming its database and one simulator model.
type keyFixture struct {
	t     *testing.T
	env   *apptest.Env
	cfg   string
	admin []string
	mid   int
}

func newKeyFixture(t *testing.T) *keyFixture {
	sh := apptest.NewShared(t, func(c *config.Config) {
		on := true
		c.Auth.Enabled = &on
	})
	f := &keyFixture{t: t, env: sh.Start(t, app.RoleAll), cfg: databaseConfig(t, sh.Config)}
	res := adminCLI(t, f.cfg, "apikey", "create", "--name", "root", "--role", "admin")
	m := keySecretRe.FindStringSubmatch(res.stdout)
	if res.code != 0 || m == nil {
		t.Fatalf("create admin: exit %d", res.code)
	}
	f.admin = []string{"Authorization", "Bearer " + m[1]}
	var model struct{ Data apptest.Model }
	if code := f.env.Do("POST", "/api/v1/models", map[string]any{"name": "cli-keys", "type": "simulator", "max_workers": 1,
		"config": map[string]any{"latency_ms": 1, "output_tokens": 2}}, &model, f.admin...); code != http.StatusCreated {
		t.Fatalf("create model: %d", code)
	}
	f.mid = model.Data.ID
	return f
}

// keys lists every key over REST as the admin.
func (f *keyFixture) keys() []keyView {
	f.t.Helper()
	var out struct{ Data []keyView }
	if code := f.env.Do("GET", "/api/v1/apikeys", nil, &out, f.admin...); code != http.StatusOK {
		f.t.Fatalf("list keys: %d", code)
	}
	return out.Data
}

func (f *keyFixture) key(id int) keyView {
	f.t.Helper()
	ks := f.keys()
	for _, k := range ks {
		if k.ID == id {
			return k
		}
	}
	f.t.Fatalf("key %d not listed: %+v", id, ks)
	return keyView{}
}

// assertBadValuesWriteNothing: bad values exit non-zero naming the flag,
// and leave key id (weight 5, month cap 50000, no model caps) unchanged.
func (f *keyFixture) assertBadValuesWriteNothing(id int) {
	t := f.t
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--weight", "0"}, "--weight"},
		{[]string{"--weight", "7", "--tokens-per-month", "-5"}, "--tokens-per-month"},
		{[]string{"--weight", "7", "--model-budget", "99999:day=5"}, "model_budgets[0].model_id"},
		{[]string{"--model-budget", fmt.Sprintf("%d:week=5", f.mid)}, "day or month"},
		{[]string{}, "give at least one"},
	} {
		res := adminCLI(t, f.cfg, append([]string{"apikey", "update", strconv.Itoa(id)}, bad.args...)...)
		if res.code == 0 || !strings.Contains(res.stderr, bad.want) {
			t.Fatalf("update %v: exit %d, stderr %q; want a failure naming %s", bad.args, res.code, res.stderr, bad.want)
		}
	}
	res := adminCLI(t, f.cfg, "apikey", "create", "--name", "bad", "--role", "viewer", "--weight", "1001")
	if res.code == 0 || !strings.Contains(res.stderr, "--weight") {
		t.Fatalf("create with weight 1001: exit %d", res.code)
	}
	if k2 := f.key(id); k2.Weight != 5 || intp(k2.TokensPerMonth) != "50000" || len(k2.ModelBudgets) != 0 {
		t.Fatalf("a refused update changed the key: %+v", k2)
	}
	res = adminCLI(t, f.cfg, "apikey", "list")
	if res.code != 0 || !regexp.MustCompile(`team-a\s+submitter\s+\S+\s+5\s+-\s+50000\s+-`).MatchString(res.stdout) {
		t.Fatalf("list does not show team-a's weight 5 and caps: exit %d", res.code)
	}
	for _, k := range f.keys() {
		if k.Name == "bad" {
			t.Fatalf("a refused create wrote key %+v", k)
		}
	}
}
