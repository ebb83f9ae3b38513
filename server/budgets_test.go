package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// A key with 1,000 tokens a day is refused with 429 once its recorded
// usage reaches the cap, with the budget, the usage and the reset time;
// nothing is written. Its usage is readable over REST and GraphQL.
func TestTokenBudgetRefusesOnceUsedUp(t *testing.T) {
	a := setupAuth(t)
	admin := []string{"Authorization", "Bearer " + a.keys["admin"]}
	var created struct {
		Data struct {
			ID  int
			Key string
		}
	}
	if code := a.Do("POST", "/api/v1/apikeys", map[string]any{"name": "budgeted", "role": "submitter", "tokens_per_day": 1000, "weight": 3}, &created, admin...); code != http.StatusCreated || created.Data.Key == "" {
		t.Fatalf("create key: %d %+v", code, created)
	}
	key := []string{"Authorization", "Bearer " + created.Data.Key}
	body := map[string]any{"model_id": a.modelID, "type": "text-generation", "input": "hi"}
	var task struct{ Data apptest.Task }
	if code := a.Do("POST", "/api/v1/tasks", body, &task, key...); code != http.StatusCreated {
		t.Fatalf("first submission under budget: %d", code)
	}
	// Record 990 tokens of usage on the key's attempt (as a worker would):
	// 990 plus the new task's input (1 token) is within 1,000 ...
	ctx := context.Background()
	db := a.App.Store.Client
	if err := db.Attempt.Create().SetTaskID(task.Data.ID).SetNumber(1).SetModelID(a.modelID).SetStatus("succeeded").
		SetAPIKeyID(created.Data.ID).SetCaller("budgeted").SetPromptTokens(490).SetCompletionTokens(500).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if code := a.Do("POST", "/api/v1/tasks", body, nil, key...); code != http.StatusCreated {
		t.Fatalf("submission at 990 of 1000: %d", code)
	}
	// ... at 1,000 it is refused.
	if _, err := db.Attempt.Update().Where(attempt.APIKeyID(created.Data.ID)).AddPromptTokens(10).Save(ctx); err != nil {
		t.Fatal(err)
	}
	before := a.CountTasks()
	var eb budgetErrorBody
	code := a.Do("POST", "/api/v1/tasks", body, &eb, key...)
	tomorrow := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1)
	if code != http.StatusTooManyRequests || eb.Error.Code != "BUDGET_EXCEEDED" || eb.Error.Budget.Period != "day" ||
		eb.Error.Budget.Limit != 1000 || eb.Error.Budget.Used != 1000 || !eb.Error.Budget.ResetsAt.Equal(tomorrow) {
		t.Fatalf("over budget: %d %+v", code, eb)
	}
	if n := a.CountTasks(); n != before {
		t.Fatalf("a refused submission wrote %d tasks", n-before)
	}
	// Another key is not limited.
	a.submit(t, "submitter")

	assertUsageReadable(t, a, key, admin, created.Data.ID)
	// Raising the cap lets the key in again; bad settings name the field.
	assertBudgetUpdates(t, a, key, admin, created.Data.ID, body)
}

// budgetErrorBody is the 429 answer of a submission over a budget.
type budgetErrorBody struct {
	Error struct {
		Code    string
		Message string
		Budget  struct {
			Period   string
			Limit    int
			Used     int
			ResetsAt time.Time `json:"resets_at"`
		}
	}
}

// assertUsageReadable: key keyID's 1,000 tokens of usage today are
// readable by itself and the admin over REST, and over GraphQL, which
// refuses it a task.
func assertUsageReadable(t *testing.T, a *authEnv, key, admin []string, keyID int) {
	t.Helper()
	var usage struct {
		Data struct {
			Weight int
			Day    struct {
				Used  int
				Limit *int
			}
			Month struct{ Used int }
		}
	}
	if code := a.Do("GET", "/api/v1/usage", nil, &usage, key...); code != http.StatusOK || usage.Data.Day.Used != 1000 ||
		usage.Data.Day.Limit == nil || *usage.Data.Day.Limit != 1000 || usage.Data.Month.Used != 1000 || usage.Data.Weight != 3 {
		t.Fatalf("own usage: %d %+v", code, usage.Data)
	}
	if code := a.Do("GET", fmt.Sprintf("/api/v1/apikeys/%d/usage", keyID), nil, &usage, admin...); code != http.StatusOK || usage.Data.Day.Used != 1000 {
		t.Fatalf("admin reads usage: %d %+v", code, usage.Data)
	}
	var gq struct {
		Data struct {
			MyUsage struct{ Day struct{ Used, Limit int } }
		}
		Errors []struct{ Extensions map[string]any }
	}
	if code := a.Do("POST", "/graphql", map[string]any{"query": "{ myUsage { day { used limit } } }"}, &gq, key...); code != http.StatusOK || gq.Data.MyUsage.Day.Used != 1000 {
		t.Fatalf("graphql myUsage: %d %+v", code, gq)
	}
	q := fmt.Sprintf(`mutation { createTask(input: {modelID: %d, type: TEXT_GENERATION, input: "x"}) { id } }`, a.modelID)
	a.Do("POST", "/graphql", map[string]any{"query": q}, &gq, key...)
	if len(gq.Errors) != 1 || gq.Errors[0].Extensions["code"] != "BUDGET_EXCEEDED" {
		t.Fatalf("graphql over budget: %+v", gq.Errors)
	}
}

// assertBudgetUpdates: bad settings name the field; with the day cap
// removed and a month cap of 500 on the model, the key is refused on that.
func assertBudgetUpdates(t *testing.T, a *authEnv, key, admin []string, keyID int, body map[string]any) {
	t.Helper()
	var eb2 apptest.ErrorBody
	if code := a.Do("PUT", fmt.Sprintf("/api/v1/apikeys/%d", keyID), map[string]any{"weight": 0}, &eb2, admin...); code != http.StatusBadRequest || eb2.Error.Field != "weight" {
		t.Fatalf("weight 0: %d %+v", code, eb2)
	}
	if code := a.Do("PUT", fmt.Sprintf("/api/v1/apikeys/%d", keyID), map[string]any{"model_budgets": []map[string]any{{"model_id": 99999, "tokens_per_day": 5}}}, &eb2, admin...); code != http.StatusBadRequest || eb2.Error.Field != "model_budgets[0].model_id" {
		t.Fatalf("budget on a missing model: %d %+v", code, eb2)
	}
	if code := a.Do("PUT", fmt.Sprintf("/api/v1/apikeys/%d", keyID), map[string]any{"tokens_per_day": 0, "model_budgets": []map[string]any{{"model_id": a.modelID, "tokens_per_month": 500}}}, nil, admin...); code != http.StatusOK {
		t.Fatalf("update key: %d", code)
	}
	var eb budgetErrorBody
	code := a.Do("POST", "/api/v1/tasks", body, &eb, key...)
	if code != http.StatusTooManyRequests || eb.Error.Budget.Period != "month" || eb.Error.Budget.Limit != 500 {
		t.Fatalf("model budget: %d %+v", code, eb)
	}
}
