package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/webhooks"
)

const testSecret = "whsec_test_configured_secret_0123456789"

// hit is one request a receiver got.
type hit struct {
	delivery int
	attempt  int
	event    string
	sigErr   error
	body     webhooks.Body
	task     map[string]any
}

// receiver is a webhook endpoint for tests: it checks every signature
// with Verify and answers with the codes of answers, then 200.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	secret  string
	mu      sync.Mutex
	hits    []hit
	answers []int
	changed chan struct{}
}

func newReceiver(t *testing.T, secret string, answers ...int) *receiver {
	r := &receiver{t: t, secret: secret, answers: answers, changed: make(chan struct{}, 1000)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("receiver read: %v", err)
		}
		h := hit{event: req.Header.Get(webhooks.EventHeader)}
		h.delivery, _ = strconv.Atoi(req.Header.Get(webhooks.DeliveryHeader))
		h.attempt, _ = strconv.Atoi(req.Header.Get(webhooks.AttemptHeader))
		r.mu.Lock()
		secret := r.secret
		r.mu.Unlock()
		h.sigErr = webhooks.Verify(secret, req.Header.Get(webhooks.SignatureHeader), raw, webhooks.DefaultTolerance, time.Now())
		if err := json.Unmarshal(raw, &h.body); err != nil {
			t.Errorf("receiver decode %q: %v", raw, err)
		}
		_ = json.Unmarshal(h.body.Task, &h.task)
		r.mu.Lock()
		code := http.StatusOK
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		r.hits = append(r.hits, h)
		r.mu.Unlock()
		w.WriteHeader(code)
		r.changed <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) snapshot() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hit(nil), r.hits...)
}

// waitHits waits until the receiver got n requests.
func (r *receiver) waitHits(n int, timeout time.Duration) []hit {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		if hs := r.snapshot(); len(hs) >= n {
			return hs
		}
		select {
		case <-r.changed:
		case <-deadline:
			r.t.Fatalf("receiver got %d requests after %s, want %d", len(r.snapshot()), timeout, n)
		}
	}
}

// delivery is the REST view of a delivery, as tests read it.
type delivery struct {
	ID             int    `json:"id"`
	TaskID         int    `json:"task_id"`
	Event          string `json:"event"`
	Status         string `json:"status"`
	Attempts       int    `json:"attempts"`
	LastStatusCode *int   `json:"last_status_code"`
	AttemptHistory []struct {
		Number     int    `json:"number"`
		StatusCode *int   `json:"status_code"`
		Error      string `json:"error"`
	} `json:"attempt_history"`
}

func deliveries(t *testing.T, e *apptest.Env, taskID int, headers ...string) []delivery {
	t.Helper()
	var out struct {
		Data []delivery `json:"data"`
	}
	if code := e.Do("GET", fmt.Sprintf("/api/v1/tasks/%d/webhooks", taskID), nil, &out, headers...); code != http.StatusOK {
		t.Fatalf("GET task %d webhooks: %d", taskID, code)
	}
	return out.Data
}

// waitDelivered waits until every delivery of the task is delivered.
func waitDelivered(t *testing.T, e *apptest.Env, taskID, want int, headers ...string) []delivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds := deliveries(t, e, taskID, headers...)
		done := len(ds) == want
		for _, d := range ds {
			done = done && d.Status == "delivered"
		}
		if done {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %d deliveries = %+v, want %d delivered", taskID, ds, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hookConfig(mutate func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		c.Webhooks.AllowPrivate = true
		c.Webhooks.Secret = testSecret
		c.Webhooks.RetryDelay = config.Duration(30 * time.Millisecond)
		c.Webhooks.MaxRetryDelay = config.Duration(100 * time.Millisecond)
		c.Webhooks.PollInterval = config.Duration(50 * time.Millisecond)
		c.Webhooks.Timeout = config.Duration(5 * time.Second)
		if mutate != nil {
			mutate(c)
		}
	}
}

// One valid signed delivery per terminal task: completed, failed,
// cancelled.
func TestOneSignedDeliveryPerTerminalTask(t *testing.T) {
	r := newReceiver(t, testSecret)
	e := apptest.New(t, hookConfig(nil))
	ok := e.Simulator("hook-ok", 2, map[string]any{"latency_ms": 5, "output_tokens": 3})
	bad := e.Simulator("hook-bad", 1, map[string]any{"latency_ms": 1, "fail_first_n": 100, "fail_kind": "permanent"})
	slow := e.Simulator("hook-slow", 1, map[string]any{"latency_ms": 600000})
	url := r.srv.URL + "/hook?x=1"
	done := e.Submit(map[string]any{"model_id": ok.ID, "type": "text-generation", "input": "hello", "callback_url": url})
	failed := e.Submit(map[string]any{"model_id": bad.ID, "type": "text-generation", "input": "boom", "callback_url": url, "max_retries": 0})
	cancelled := e.Submit(map[string]any{"model_id": slow.ID, "type": "text-generation", "input": "wait", "callback_url": url})
	plain := e.Submit(map[string]any{"model_id": ok.ID, "type": "text-generation", "input": "no hook"})
	e.WaitTask(cancelled.ID, "running", 30*time.Second)
	if code := e.Do("POST", fmt.Sprintf("/api/v1/tasks/%d/cancel", cancelled.ID), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	want := map[int]string{done.ID: "completed", failed.ID: "failed", cancelled.ID: "cancelled"}
	final := map[int]apptest.Task{}
	for id, st := range want {
		final[id] = e.WaitTask(id, st, 30*time.Second)
		waitDelivered(t, e, id, 1)
	}
	e.WaitTask(plain.ID, "completed", 30*time.Second)
	if ds := deliveries(t, e, plain.ID); len(ds) != 0 {
		t.Fatalf("a task without callback_url has deliveries: %+v", ds)
	}
	hs := r.snapshot()
	if len(hs) != 3 {
		t.Fatalf("receiver got %d requests, want 3: %+v", len(hs), hs)
	}
	seen := map[int]bool{}
	for _, h := range hs {
		if h.sigErr != nil {
			t.Fatalf("delivery %d: signature: %v", h.delivery, h.sigErr)
		}
		id := int(h.task["id"].(float64))
		if seen[id] {
			t.Fatalf("task %d delivered twice", id)
		}
		seen[id] = true
		st := want[id]
		if h.event != "task."+st || h.body.Event != "task."+st || h.task["status"] != st || h.attempt != 1 || h.body.Attempt != 1 || h.body.DeliveryID != h.delivery {
			t.Fatalf("delivery for task %d = %+v, want event task.%s attempt 1", id, h, st)
		}
		ft := final[id]
		switch st {
		case "completed":
			if h.task["output"] != ft.Output || ft.Output == "" || h.task["completion_tokens"] != float64(3) ||
				h.task["total_tokens"] != float64(ft.TotalTokens) || h.task["started_at"] == nil || h.task["run_ms"] == nil {
				t.Fatalf("completed payload = %v, task = %+v", h.task, ft)
			}
		default:
			if h.task["error"] != ft.Error || ft.Error == "" || h.task["output"] != nil {
				t.Fatalf("%s payload = %v, task = %+v", st, h.task, ft)
			}
		}
	}
	// The detail view carries the deliveries too.
	var detail struct {
		Data struct {
			CallbackURL       string     `json:"callback_url"`
			WebhookDeliveries []delivery `json:"webhook_deliveries"`
		} `json:"data"`
	}
	e.Do("GET", fmt.Sprintf("/api/v1/tasks/%d", done.ID), nil, &detail)
	if detail.Data.CallbackURL != url || len(detail.Data.WebhookDeliveries) != 1 ||
		len(detail.Data.WebhookDeliveries[0].AttemptHistory) != 1 || *detail.Data.WebhookDeliveries[0].AttemptHistory[0].StatusCode != 200 {
		t.Fatalf("task detail = %+v", detail.Data)
	}
}

// A receiver that answers 500 twice gets the same delivery a third time.
func TestRetriedAfterTwo500s(t *testing.T) {
	r := newReceiver(t, testSecret, 500, 500)
	e := apptest.New(t, hookConfig(nil))
	m := e.Simulator("hook-retry", 1, map[string]any{"latency_ms": 1})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi", "callback_url": r.srv.URL})
	ds := waitDelivered(t, e, task.ID, 1)
	hs := r.snapshot()
	if len(hs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(hs))
	}
	for i, h := range hs {
		if h.sigErr != nil || h.delivery != ds[0].ID || h.attempt != i+1 || h.body.Attempt != i+1 {
			t.Fatalf("request %d = %+v (delivery %d)", i+1, h, ds[0].ID)
		}
	}
	d := ds[0]
	if d.Attempts != 3 || len(d.AttemptHistory) != 3 || *d.AttemptHistory[0].StatusCode != 500 ||
		*d.AttemptHistory[1].StatusCode != 500 || *d.AttemptHistory[2].StatusCode != 200 || d.AttemptHistory[0].Error == "" {
		t.Fatalf("delivery = %+v", d)
	}
}

// A delivery waiting for its retry survives a restart of the whole
// deployment: the next process sends it.
func TestDeliverySurvivesRestart(t *testing.T) {
	r := newReceiver(t, testSecret, 500)
	sh := apptest.NewShared(t, hookConfig(func(c *config.Config) {
		// Long enough that the retry cannot happen before the restart.
		c.Webhooks.RetryDelay = config.Duration(3 * time.Second)
		c.Webhooks.MaxRetryDelay = config.Duration(3 * time.Second)
	}))
	a := sh.Start(t, app.RoleAll)
	m := a.Simulator("hook-restart", 1, map[string]any{"latency_ms": 1})
	task := a.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi", "callback_url": r.srv.URL})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds := deliveries(t, a, task.ID)
		if len(ds) == 1 && ds[0].Attempts == 1 && ds[0].Status == "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first failed attempt not recorded: %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Stop()
	if n := len(r.snapshot()); n != 1 {
		t.Fatalf("receiver got %d requests before the restart, want 1", n)
	}
	b := sh.Start(t, app.RoleAll)
	ds := waitDelivered(t, b, task.ID, 1)
	hs := r.snapshot()
	if len(hs) != 2 || hs[1].delivery != ds[0].ID || hs[1].attempt != 2 || hs[1].sigErr != nil {
		t.Fatalf("after the restart: %+v", hs)
	}
}

// A callback URL on loopback or a private network is refused unless
// webhooks.allow_private; bad schemes and unsigned webhooks always are;
// nothing is written.
func TestCallbackURLChecks(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Webhooks.Secret = testSecret })
	m := e.Simulator("hook-check", 1, nil)
	for _, u := range []string{"http://127.0.0.1:9/x", "http://localhost/x", "http://10.1.2.3/x", "http://[::1]/x",
		"http://192.168.0.10/", "http://169.254.169.254/latest", "ftp://example.com/x", "example.com/x", "http://user:pw@example.com/"} {
		var eb apptest.ErrorBody
		code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x", "callback_url": u}, &eb)
		if code != http.StatusBadRequest || eb.Error.Field != "callback_url" {
			t.Fatalf("callback_url %q: %d %+v", u, code, eb)
		}
	}
	if n := e.CountTasks(); n != 0 {
		t.Fatalf("%d tasks written by refused requests", n)
	}
	// A public address passes the check at create.
	e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x", "callback_url": "https://hooks.example.com/llm"})

	allowed := apptest.New(t, func(c *config.Config) { c.Webhooks.AllowPrivate = true })
	m2 := allowed.Simulator("hook-check2", 1, nil)
	var eb apptest.ErrorBody
	// Allowed, but nothing to sign with: no key, no webhooks.secret.
	code := allowed.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m2.ID, "type": "text-generation", "input": "x", "callback_url": "http://127.0.0.1:9/x"}, &eb)
	if code != http.StatusBadRequest || eb.Error.Field != "callback_url" {
		t.Fatalf("unsigned callback: %d %+v", code, eb)
	}
	// Metadata stays refused even with allow_private.
	code = allowed.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m2.ID, "type": "text-generation", "input": "x", "callback_url": "http://169.254.169.254/"}, &eb)
	if code != http.StatusBadRequest || eb.Error.Field != "callback_url" {
		t.Fatalf("metadata callback: %d %+v", code, eb)
	}
}

// Per-key secrets and default callback URLs, admin redelivery and its
// permission.
func TestKeySecretDefaultURLAndRedelivery(t *testing.T) {
	e := apptest.New(t, hookConfig(func(c *config.Config) {
		on := true
		c.Auth.Enabled = &on
		c.Webhooks.Secret = ""
	}))
	svc := apikeys.New(e.App.Store.Client)
	admin, err := svc.Create(context.Background(), "admin", "admin")
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(k string) []string { return []string{"Authorization", "Bearer " + k} }
	var created struct {
		Data struct {
			ID            int    `json:"id"`
			Key           string `json:"key"`
			WebhookSecret string `json:"webhook_secret"`
		} `json:"data"`
	}
	if code := e.Do("POST", "/api/v1/apikeys", map[string]any{"name": "sub", "role": "submitter"}, &created, bearer(admin.Secret)...); code != http.StatusCreated || created.Data.WebhookSecret == "" {
		t.Fatalf("create key: %d %+v", code, created)
	}
	// The stored secret is sealed, not the one shown.
	k, err := svc.Get(context.Background(), created.Data.ID)
	if err != nil || k.WebhookSecret == created.Data.WebhookSecret || k.WebhookSecret == "" {
		t.Fatalf("stored webhook secret %q (err %v) is not sealed", k.WebhookSecret, err)
	}
	r := newReceiver(t, created.Data.WebhookSecret)
	var eb apptest.ErrorBody
	if code := e.Do("PUT", fmt.Sprintf("/api/v1/apikeys/%d", created.Data.ID), map[string]any{"callback_url": "gopher://x"}, &eb, bearer(admin.Secret)...); code != http.StatusBadRequest || eb.Error.Field != "callback_url" {
		t.Fatalf("bad default callback_url: %d %+v", code, eb)
	}
	if code := e.Do("PUT", fmt.Sprintf("/api/v1/apikeys/%d", created.Data.ID), map[string]any{"callback_url": r.srv.URL}, nil, bearer(admin.Secret)...); code != http.StatusOK {
		t.Fatalf("set default callback_url: %d", code)
	}
	var m struct{ Data apptest.Model }
	if code := e.Do("POST", "/api/v1/models", map[string]any{"name": "hook-key", "type": "simulator", "max_workers": 1, "config": map[string]any{"latency_ms": 1}}, &m, bearer(admin.Secret)...); code != http.StatusCreated {
		t.Fatalf("model: %d", code)
	}
	var task struct{ Data apptest.Task }
	if code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m.Data.ID, "type": "text-generation", "input": "hi"}, &task, bearer(created.Data.Key)...); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}
	ds := waitDelivered(t, e, task.Data.ID, 1, bearer(created.Data.Key)...)
	hs := r.snapshot()
	if len(hs) != 1 || hs[0].sigErr != nil {
		t.Fatalf("signed with the key's secret: %+v", hs)
	}
	if err := webhooks.Verify(testSecret, "t=1,v1=00", nil, time.Minute, time.Now()); err == nil {
		t.Fatal("Verify accepted garbage")
	}
	assertAdminRedeliversAndRotates(t, e, r, admin.Secret, created.Data.Key, created.Data.ID, created.Data.WebhookSecret, ds[0].ID)
}

// assertAdminRedeliversAndRotates: only an admin redelivers delivery
// deliveryID (signed with key keyID's secret oldSecret), an unknown
// delivery is a 404, and after a rotation the new secret signs what is
// sent.
func assertAdminRedeliversAndRotates(t *testing.T, e *apptest.Env, r *receiver, adminKey, subKey string, keyID int, oldSecret string, deliveryID int) {
	t.Helper()
	bearer := func(k string) []string { return []string{"Authorization", "Bearer " + k} }
	// Only an admin redelivers.
	path := fmt.Sprintf("/api/v1/webhooks/deliveries/%d/redeliver", deliveryID)
	if code := e.Do("POST", path, nil, nil, bearer(subKey)...); code != http.StatusForbidden {
		t.Fatalf("submitter redelivers: %d, want 403", code)
	}
	if code := e.Do("POST", path, nil, nil, bearer(adminKey)...); code != http.StatusAccepted {
		t.Fatalf("admin redelivers: %d", code)
	}
	hs := r.waitHits(2, 30*time.Second)
	if hs[1].delivery != deliveryID || hs[1].attempt != 2 || hs[1].sigErr != nil {
		t.Fatalf("redelivery = %+v", hs[1])
	}
	if code := e.Do("POST", "/api/v1/webhooks/deliveries/999999/redeliver", nil, nil, bearer(adminKey)...); code != http.StatusNotFound {
		t.Fatalf("redeliver unknown: %d", code)
	}
	// A rotated secret signs what is sent from then on.
	var rot struct {
		Data struct {
			WebhookSecret string `json:"webhook_secret"`
		} `json:"data"`
	}
	if code := e.Do("POST", fmt.Sprintf("/api/v1/apikeys/%d/webhook-secret", keyID), nil, &rot, bearer(adminKey)...); code != http.StatusOK || rot.Data.WebhookSecret == "" || rot.Data.WebhookSecret == oldSecret {
		t.Fatalf("rotate: %d %+v", code, rot)
	}
	r.mu.Lock()
	r.secret = rot.Data.WebhookSecret
	r.mu.Unlock()
	e.Do("POST", path, nil, nil, bearer(adminKey)...)
	hs = r.waitHits(3, 30*time.Second)
	if hs[2].sigErr != nil {
		t.Fatalf("after rotation: %v", hs[2].sigErr)
	}
}

// The documented check: a forged body or secret, or an old timestamp
// (a replay), fails.
func TestVerify(t *testing.T) {
	body := []byte(`{"delivery_id":1,"event":"task.completed"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := webhooks.Sign("s3cret-s3cret-s3cret", now, body)
	if err := webhooks.Verify("s3cret-s3cret-s3cret", sig, body, 5*time.Minute, now.Add(time.Minute)); err != nil {
		t.Fatalf("valid: %v", err)
	}
	if err := webhooks.Verify("s3cret-s3cret-s3cret", sig, []byte(`{"delivery_id":2}`), 5*time.Minute, now); !errors.Is(err, webhooks.ErrBadSignature) {
		t.Fatalf("forged body: %v", err)
	}
	if err := webhooks.Verify("other-secret-other", sig, body, 5*time.Minute, now); !errors.Is(err, webhooks.ErrBadSignature) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := webhooks.Verify("s3cret-s3cret-s3cret", sig, body, 5*time.Minute, now.Add(6*time.Minute)); !errors.Is(err, webhooks.ErrTooOld) {
		t.Fatalf("replay: %v", err)
	}
	if err := webhooks.Verify("s3cret-s3cret-s3cret", "v1=abc", body, 5*time.Minute, now); !errors.Is(err, webhooks.ErrMalformed) {
		t.Fatalf("malformed: %v", err)
	}
}

// A redelivery asked while a try is still in flight is not lost: the try
// is recorded, and the delivery is sent once more as the next attempt.
// (The try's outcome used to overwrite the redelivery's pending status.)
func TestRedeliveryDuringATryIsNotLost(t *testing.T) {
	type try struct{ delivery, attempt int }
	tries := make(chan try, 10)
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		var tr try
		tr.delivery, _ = strconv.Atoi(req.Header.Get(webhooks.DeliveryHeader))
		tr.attempt, _ = strconv.Atoi(req.Header.Get(webhooks.AttemptHeader))
		tries <- tr
		first := false
		once.Do(func() { first = true })
		if first {
			<-release // answered once the test has asked for the redelivery
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	e := apptest.New(t, hookConfig(nil))
	m := e.Simulator("hook-inflight", 1, map[string]any{"latency_ms": 1})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi", "callback_url": srv.URL})
	var first try
	select {
	case first = <-tries:
	case <-time.After(30 * time.Second):
		t.Fatal("the first try never came")
	}
	if code := e.Do("POST", fmt.Sprintf("/api/v1/webhooks/deliveries/%d/redeliver", first.delivery), nil, nil); code != http.StatusAccepted {
		t.Fatalf("redeliver: %d", code)
	}
	close(release)
	select {
	case second := <-tries:
		if second.delivery != first.delivery || second.attempt != 2 {
			t.Fatalf("second try = %+v, want delivery %d attempt 2", second, first.delivery)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the redelivery asked during the first try was never sent")
	}
	ds := waitDelivered(t, e, task.ID, 1)
	if d := ds[0]; d.Attempts != 2 || len(d.AttemptHistory) != 2 {
		t.Fatalf("delivery = %+v, want 2 attempts recorded", d)
	}
}

// TestSenderStopEndsItsGoroutine: a sender started beside the process's
// own runs in a goroutine of its own until Stop, which returns once that
// goroutine ended.
func TestSenderStopEndsItsGoroutine(t *testing.T) {
	e := apptest.New(t, hookConfig(nil))
	s, err := webhooks.New(e.App.Store.Client, e.App.Config, e.App.Log)
	if err != nil {
		t.Fatal(err)
	}
	apptest.CheckStopEndsGoroutine(t, s, "webhooks.(*Sender).run(")
}
