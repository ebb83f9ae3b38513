package providers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/outbound"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// A model built while its endpoint was allowed cannot reach it once the
// policy in force refuses it (the scheduler's own address here): every
// connection is checked, not only the config, and nothing is sent.
func TestProvidersDialThroughThePolicy(t *testing.T) {
	var hits atomic.Int32
	own := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"text": "internal metrics"}`))
	}))
	defer own.Close()
	custom := mustProvider(t, domain.ModelCustom, map[string]any{
		"url": own.URL + "/metrics", "response_path": "text", "body": map[string]any{"q": "{{input}}"},
	})
	openai := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": own.URL + "/v1", "model": "m", "api_key": "sk-secret"})

	pol, err := outbound.New(outbound.Config{Self: []string{own.Listener.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	providers.SetOutbound(pol)
	defer providers.SetOutbound(outbound.Default())

	for name, p := range map[string]providers.Provider{"custom": custom, "openai": openai} {
		_, err := p.Generate(context.Background(), providers.Request{TaskType: domain.TypeTextGeneration, Input: "x",
			Messages: []providers.Message{{Role: "user", Content: "x"}}}, nil)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Kind != providers.KindPermanent || !strings.Contains(err.Error(), "refused: the scheduler's own listen address") {
			t.Errorf("%s: error %v, want a permanent error refusing the own address", name, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("own server got %d requests", n)
	}
	// The same config is refused when validated under this policy.
	err = providers.Validate(domain.ModelCustom, map[string]any{"url": own.URL + "/metrics", "response_path": "text", "body": "{}"})
	if err == nil || !strings.Contains(err.Error(), "config.url: outbound destination") {
		t.Fatalf("validate: %v", err)
	}
}
