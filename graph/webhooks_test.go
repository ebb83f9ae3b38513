package graph_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/webhooks"
)

// Webhooks over GraphQL: a key's secret shown once by createAPIKey,
// callbackURL on createTask and createTasks (checked, nothing written when
// refused), the deliveries on Task, and redeliverWebhook and
// rotateWebhookSecret for admins only.
func TestWebhooksOverGraphQL(t *testing.T) {
	on := true
	env := apptest.New(t, func(c *config.Config) {
		c.Auth.Enabled = &on
		c.Webhooks.AllowPrivate = true
		c.Webhooks.RetryDelay = config.Duration(20 * time.Millisecond)
		c.Webhooks.MaxRetryDelay = config.Duration(50 * time.Millisecond)
		c.Webhooks.PollInterval = config.Duration(50 * time.Millisecond)
	})
	admin, _ := addKey(t, env, domain.RoleAdmin)
	var created struct {
		CreateAPIKey struct {
			APIKey struct {
				ID               gid
				HasWebhookSecret bool
			}
			Secret        string
			WebhookSecret string
		}
	}
	mustData(t, env, admin, `mutation { createAPIKey(input: {name: "hooks", role: "submitter"}) { apiKey { id hasWebhookSecret } secret webhookSecret } }`, nil, &created)
	sub, secret := created.CreateAPIKey.Secret, created.CreateAPIKey.WebhookSecret
	if secret == "" || !created.CreateAPIKey.APIKey.HasWebhookSecret {
		t.Fatalf("createAPIKey = %+v", created)
	}
	hooks := newHookReceiver(secret)
	defer hooks.srv.Close()

	m := createModel(t, env, admin, map[string]any{"name": "gql-hooks", "type": "SIMULATOR", "maxWorkers": 2, "config": map[string]any{"latency_ms": 1}})
	in := map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "callbackURL": "ftp://nope"}
	if e := wantCode(t, env, sub, createTaskOp, map[string]any{"in": in}, "BAD_USER_INPUT"); e.Extensions["field"] != "callback_url" {
		t.Fatalf("bad callbackURL error = %+v", e)
	}
	var batch struct{ CreateTasks []taskView }
	ok := map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "callbackURL": hooks.srv.URL}
	const batchOp = `mutation($ins: [CreateTaskInput!]!) { createTasks(inputs: $ins) { id status } }`
	if e := wantCode(t, env, sub, batchOp, map[string]any{"ins": []any{ok, map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "callbackURL": "mailto:a@b"}}}, "BAD_USER_INPUT"); e.Extensions["field"] != "inputs[1].callback_url" {
		t.Fatalf("batch error = %+v", e)
	}
	if n := env.CountTasks(); n != 0 {
		t.Fatalf("%d tasks written by refused requests", n)
	}
	mustData(t, env, sub, batchOp, map[string]any{"ins": []any{ok, ok}}, &batch)
	var last gqlDelivery
	for _, tk := range batch.CreateTasks {
		last = waitDelivered(t, env, sub, tk.ID, hooks.srv.URL)
	}
	if got, sigErrs := hooks.received(); len(got) != 2 || sigErrs[0] != nil || sigErrs[1] != nil || got[0] == got[1] {
		t.Fatalf("receiver got %v (signature errors %v)", got, sigErrs)
	}
	assertRedeliverAndRotate(t, env, admin, sub, hooks, last.ID, created.CreateAPIKey.APIKey.ID)
}

// gqlDelivery is a webhook delivery as GraphQL shows it.
type gqlDelivery struct {
	ID             gid
	Event          string
	Status         string
	Attempts       int
	AttemptHistory []struct {
		Number     int
		StatusCode *int
	}
}

// hookReceiver receives webhooks, checking each one's signature with
// secret, and keeps the delivery ids in the order they came.
type hookReceiver struct {
	srv     *httptest.Server
	secret  string
	mu      sync.Mutex
	sigErrs []error
	got     []string
}

func newHookReceiver(secret string) *hookReceiver {
	h := &hookReceiver{secret: secret}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.sigErrs = append(h.sigErrs, webhooks.Verify(h.secret, r.Header.Get(webhooks.SignatureHeader), raw, webhooks.DefaultTolerance, time.Now()))
		h.got = append(h.got, r.Header.Get(webhooks.DeliveryHeader))
		h.mu.Unlock()
	}))
	return h
}

// received is the delivery ids received so far and their signature
// errors (nil for a good signature).
func (h *hookReceiver) received() ([]string, []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got), slices.Clone(h.sigErrs)
}

// waitDelivered waits until task id's one delivery is DELIVERED, checks it
// (a completed event to callback, one attempt answered 200) and returns it.
func waitDelivered(t *testing.T, env *apptest.Env, token string, id gid, callback string) gqlDelivery {
	t.Helper()
	var one struct {
		Task struct {
			CallbackURL       *string
			WebhookDeliveries []gqlDelivery
		}
	}
	const taskOp = `query($id: ID!) { task(id: $id) { callbackURL webhookDeliveries { id event status attempts attemptHistory { number statusCode } } } }`
	deadline := time.Now().Add(30 * time.Second)
	for {
		mustData(t, env, token, taskOp, map[string]any{"id": id}, &one)
		ds := one.Task.WebhookDeliveries
		if len(ds) == 1 && ds[0].Status == "DELIVERED" {
			if ds[0].Event != "COMPLETED" || ds[0].Attempts != 1 || len(ds[0].AttemptHistory) != 1 || *ds[0].AttemptHistory[0].StatusCode != 200 || *one.Task.CallbackURL != callback {
				t.Fatalf("task %v = %+v", id, one.Task)
			}
			return ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %v deliveries = %+v", id, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertRedeliverAndRotate: redeliverWebhook and rotateWebhookSecret are
// refused to the submitter; the admin's redelivery of delivery id arrives,
// signed, and the rotation gives key keyID a new secret.
func assertRedeliverAndRotate(t *testing.T, env *apptest.Env, admin, sub string, hooks *hookReceiver, id, keyID gid) {
	t.Helper()
	redeliver := `mutation($id: ID!) { redeliverWebhook(id: $id) { id status } }`
	wantCode(t, env, sub, redeliver, map[string]any{"id": id}, "FORBIDDEN")
	var rd struct{ RedeliverWebhook gqlDelivery }
	mustData(t, env, admin, redeliver, map[string]any{"id": fmt.Sprint(id.N)}, &rd)
	if rd.RedeliverWebhook.ID != id || rd.RedeliverWebhook.Status != "PENDING" {
		t.Fatalf("redeliverWebhook = %+v", rd)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, _ := hooks.received(); len(got) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redelivery not received")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, sigErrs := hooks.received(); got[2] != fmt.Sprint(id.N) || sigErrs[2] != nil {
		t.Fatalf("redelivery = %s (%v), want delivery %v", got[2], sigErrs[2], id)
	}
	rotate := `mutation($id: ID!) { rotateWebhookSecret(apiKeyID: $id) { apiKey { id } webhookSecret } }`
	wantCode(t, env, sub, rotate, map[string]any{"id": fmt.Sprint(keyID.N)}, "FORBIDDEN")
	var rot struct {
		RotateWebhookSecret struct{ WebhookSecret string }
	}
	mustData(t, env, admin, rotate, map[string]any{"id": keyID}, &rot)
	if rot.RotateWebhookSecret.WebhookSecret == "" || rot.RotateWebhookSecret.WebhookSecret == hooks.secret {
		t.Fatalf("rotateWebhookSecret = %+v", rot)
	}
}
