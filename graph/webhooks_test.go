package graph_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	var mu sync.Mutex
	var sigErrs []error
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		sigErrs = append(sigErrs, webhooks.Verify(secret, r.Header.Get(webhooks.SignatureHeader), raw, webhooks.DefaultTolerance, time.Now()))
		got = append(got, r.Header.Get(webhooks.DeliveryHeader))
		mu.Unlock()
	}))
	defer srv.Close()

	m := createModel(t, env, admin, map[string]any{"name": "gql-hooks", "type": "SIMULATOR", "maxWorkers": 2, "config": map[string]any{"latency_ms": 1}})
	in := map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "callbackURL": "ftp://nope"}
	if e := wantCode(t, env, sub, createTaskOp, map[string]any{"in": in}, "BAD_USER_INPUT"); e.Extensions["field"] != "callback_url" {
		t.Fatalf("bad callbackURL error = %+v", e)
	}
	var batch struct{ CreateTasks []taskView }
	ok := map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "callbackURL": srv.URL}
	const batchOp = `mutation($ins: [CreateTaskInput!]!) { createTasks(inputs: $ins) { id status } }`
	if e := wantCode(t, env, sub, batchOp, map[string]any{"ins": []any{ok, map[string]any{"modelID": m.ID, "type": "TEXT_GENERATION", "input": "x", "callbackURL": "mailto:a@b"}}}, "BAD_USER_INPUT"); e.Extensions["field"] != "inputs[1].callback_url" {
		t.Fatalf("batch error = %+v", e)
	}
	if n := env.CountTasks(); n != 0 {
		t.Fatalf("%d tasks written by refused requests", n)
	}
	mustData(t, env, sub, batchOp, map[string]any{"ins": []any{ok, ok}}, &batch)
	type deliveryView struct {
		ID             gid
		Event          string
		Status         string
		Attempts       int
		AttemptHistory []struct {
			Number     int
			StatusCode *int
		}
	}
	var one struct {
		Task struct {
			CallbackURL       *string
			WebhookDeliveries []deliveryView
		}
	}
	const taskOp = `query($id: ID!) { task(id: $id) { callbackURL webhookDeliveries { id event status attempts attemptHistory { number statusCode } } } }`
	for _, tk := range batch.CreateTasks {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mustData(t, env, sub, taskOp, map[string]any{"id": tk.ID}, &one)
			ds := one.Task.WebhookDeliveries
			if len(ds) == 1 && ds[0].Status == "DELIVERED" {
				if ds[0].Event != "COMPLETED" || ds[0].Attempts != 1 || len(ds[0].AttemptHistory) != 1 || *ds[0].AttemptHistory[0].StatusCode != 200 || *one.Task.CallbackURL != srv.URL {
					t.Fatalf("task %v = %+v", tk.ID, one.Task)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %v deliveries = %+v", tk.ID, ds)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	mu.Lock()
	if len(got) != 2 || sigErrs[0] != nil || sigErrs[1] != nil || got[0] == got[1] {
		t.Fatalf("receiver got %v (signature errors %v)", got, sigErrs)
	}
	mu.Unlock()
	id := one.Task.WebhookDeliveries[0].ID
	redeliver := `mutation($id: ID!) { redeliverWebhook(id: $id) { id status } }`
	wantCode(t, env, sub, redeliver, map[string]any{"id": id}, "FORBIDDEN")
	var rd struct{ RedeliverWebhook deliveryView }
	mustData(t, env, admin, redeliver, map[string]any{"id": fmt.Sprint(id.N)}, &rd)
	if rd.RedeliverWebhook.ID != id || rd.RedeliverWebhook.Status != "PENDING" {
		t.Fatalf("redeliverWebhook = %+v", rd)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redelivery not received")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if got[2] != fmt.Sprint(id.N) || sigErrs[2] != nil {
		t.Fatalf("redelivery = %s (%v), want delivery %v", got[2], sigErrs[2], id)
	}
	mu.Unlock()
	rotate := `mutation($id: ID!) { rotateWebhookSecret(apiKeyID: $id) { apiKey { id } webhookSecret } }`
	wantCode(t, env, sub, rotate, map[string]any{"id": fmt.Sprint(created.CreateAPIKey.APIKey.ID.N)}, "FORBIDDEN")
	var rot struct {
		RotateWebhookSecret struct{ WebhookSecret string }
	}
	mustData(t, env, admin, rotate, map[string]any{"id": created.CreateAPIKey.APIKey.ID}, &rot)
	if rot.RotateWebhookSecret.WebhookSecret == "" || rot.RotateWebhookSecret.WebhookSecret == secret {
		t.Fatalf("rotateWebhookSecret = %+v", rot)
	}
}
