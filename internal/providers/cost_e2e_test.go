package providers_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

// Every attempt stores its cost at its model's prices; a task's cost is the
// sum of its attempts', the failed one included; the cost report's totals
// by day, model and caller equal the sum of the attempts. A cut stream's
// tokens are estimated, and so marked.
func TestE2ECostOfEveryAttemptAddsUp(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"half ", "an ", "answer"}, CutAfter: 2})
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"a ", "whole ", "answer"}, Usage: &fakeopenai.Usage{PromptTokens: 1000, CompletionTokens: 500}})
	e := apptest.New(t, nil)
	var out struct{ Data apptest.Model }
	body := map[string]any{"name": "priced", "type": "openai", "max_workers": 1, "input_price": 2.0, "output_price": 10.0,
		"config": map[string]any{"base_url": s.BaseURL(), "model": "m"}}
	if code := e.Do("POST", "/api/v1/models", body, &out); code != http.StatusCreated {
		t.Fatalf("create priced model: %d", code)
	}
	m := out.Data
	tk := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "go", "caller": "team-a"})
	got := e.WaitTask(tk.ID, "", 30*time.Second)
	if got.Status != "completed" || len(got.AttemptHistory) != 2 {
		t.Fatalf("task %s, %d attempts (%s)", got.Status, len(got.AttemptHistory), got.Error)
	}
	atts, err := e.App.Store.Client.Attempt.Query().Where(attempt.TaskID(tk.ID)).Order(ent.Asc(attempt.FieldNumber)).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	failed, ok := atts[0], atts[1]
	if failed.Cost <= 0 || !failed.CostEstimated || failed.CompletionTokens == 0 {
		t.Errorf("failed attempt: cost %v estimated %v tokens %d/%d; want a positive estimated cost", failed.Cost, failed.CostEstimated, failed.PromptTokens, failed.CompletionTokens)
	}
	if want := (1000*2.0 + 500*10.0) / 1e6; !near(ok.Cost, want) || ok.CostEstimated {
		t.Errorf("reported attempt: cost %v estimated %v, want %v not estimated", ok.Cost, ok.CostEstimated, want)
	}
	sum := failed.Cost + ok.Cost
	if !near(got.Cost, sum) || !got.CostEstimated {
		t.Errorf("task cost %v estimated %v, want the attempts' sum %v, estimated", got.Cost, got.CostEstimated, sum)
	}
	if tokens := failed.PromptTokens + failed.CompletionTokens + ok.PromptTokens + ok.CompletionTokens; got.TotalTokens != tokens {
		t.Errorf("task tokens %d, want the attempts' sum %d", got.TotalTokens, tokens)
	}

	assertRESTCostReport(t, e, m.ID, sum)
	assertGraphQLCostReport(t, e, m.ID, sum)

	var eb apptest.ErrorBody
	body["name"], body["input_price"] = "bad-price", -1
	if code := e.Do("POST", "/api/v1/models", body, &eb); code != http.StatusBadRequest || eb.Error.Field != "input_price" {
		t.Errorf("negative price: %d %+v, want 400 naming input_price", code, eb)
	}
}

// assertRESTCostReport: the REST cost report's total, today's total and
// the totals by model and by caller all equal sum, marked estimated.
func assertRESTCostReport(t *testing.T, e *apptest.Env, modelID int, sum float64) {
	t.Helper()
	var rep struct {
		Data struct {
			Cost      float64
			Estimated bool
			Days      []struct {
				Date     string
				Cost     float64
				ByModel  []struct{ Cost float64 } `json:"by_model"`
				ByCaller []struct {
					Name string
					Cost float64
				} `json:"by_caller"`
			}
			ByModel []struct {
				ModelID int `json:"model_id"`
				Name    string
				Cost    float64
			} `json:"by_model"`
			ByCaller []struct {
				Name     string
				Cost     float64
				Attempts int
			} `json:"by_caller"`
		}
	}
	if code := e.Do("GET", "/api/v1/stats/cost?days=7", nil, &rep); code != http.StatusOK {
		t.Fatalf("cost report: %d", code)
	}
	r := rep.Data
	if !near(r.Cost, sum) || !r.Estimated || len(r.Days) != 7 || !near(r.Days[6].Cost, sum) {
		t.Fatalf("cost report total %v (estimated %v), today %+v; want %v", r.Cost, r.Estimated, r.Days[len(r.Days)-1], sum)
	}
	if len(r.ByModel) != 1 || r.ByModel[0].ModelID != modelID || r.ByModel[0].Name != "priced" || !near(r.ByModel[0].Cost, sum) {
		t.Errorf("by model = %+v", r.ByModel)
	}
	if len(r.ByCaller) != 1 || r.ByCaller[0].Name != "team-a" || !near(r.ByCaller[0].Cost, sum) || r.ByCaller[0].Attempts != 2 {
		t.Errorf("by caller = %+v", r.ByCaller)
	}
	if d := r.Days[6]; len(d.ByCaller) != 1 || d.ByCaller[0].Name != "team-a" || len(d.ByModel) != 1 {
		t.Errorf("today by model %+v by caller %+v", d.ByModel, d.ByCaller)
	}
}

// assertGraphQLCostReport: GraphQL reports the same cost and the model's
// prices.
func assertGraphQLCostReport(t *testing.T, e *apptest.Env, modelID int, sum float64) {
	t.Helper()
	var gq struct {
		Data struct {
			CostReport struct {
				Cost     float64
				ByCaller []struct {
					Name string
					Cost float64
				}
			}
			Model struct{ InputPrice, OutputPrice float64 }
		}
	}
	q := fmt.Sprintf(`{ costReport(days: 1) { cost byCaller { name cost } } model(id: %d) { inputPrice outputPrice } }`, modelID)
	if code := e.Do("POST", "/graphql", map[string]any{"query": q}, &gq); code != http.StatusOK || !near(gq.Data.CostReport.Cost, sum) ||
		gq.Data.Model.InputPrice != 2 || gq.Data.Model.OutputPrice != 10 {
		t.Errorf("graphql cost report: %d %+v", code, gq.Data)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
