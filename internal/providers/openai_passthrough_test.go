package providers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

// frontDoorRequest is a task of the OpenAI front door: its params hold
// the client's body under "openai".
func frontDoorRequest(t *testing.T, body map[string]any) providers.Request {
	t.Helper()
	return textRequest(t, domain.TypeTextGeneration, "hi", map[string]any{"openai": body})
}

func TestOpenAIPassthroughSendsTheBodyAsItIs(t *testing.T) {
	s := newFake(t)
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "upstream-model", "max_tokens": 64})
	tools := []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": map[string]any{"type": "object"}}}}
	req := frontDoorRequest(t, map[string]any{
		"model":    "front-name",
		"messages": []any{map[string]any{"role": "system", "content": []any{map[string]any{"type": "text", "text": "be brief"}}}, map[string]any{"role": "user", "content": "hi there"}},
		"tools":    tools, "seed": 7.0, "response_format": map[string]any{"type": "json_object"},
	})
	res, err := p.Generate(context.Background(), req, (&collect{}).add)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Requests()[0].Body
	if got["model"] != "upstream-model" || got["seed"] != 7.0 || got["max_tokens"] != 64.0 || got["stream"] != nil || got["stream_options"] != nil {
		t.Errorf("upstream body = %v; want the model's own name, seed, the config's max_tokens, no stream", got)
	}
	if diff := cmp.Diff(tools, got["tools"]); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"type": "json_object"}, got["response_format"]); diff != "" {
		t.Errorf("response_format (-want +got):\n%s", diff)
	}
	if res.Output != "echo: hi there" {
		t.Errorf("output = %q", res.Output)
	}
	var answer map[string]any
	if err := json.Unmarshal(res.Raw, &answer); err != nil || answer["id"] != "chatcmpl-fake" || answer["object"] != "chat.completion" {
		t.Errorf("Raw = %s (%v); want the upstream's chat.completion as it was sent", res.Raw, err)
	}
	// The text of the messages, for providers that do not speak OpenAI.
	want := []providers.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi there"}}
	if diff := cmp.Diff(want, req.Messages); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

func TestOpenAIPassthroughStreamsRawChunks(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Chunks: []string{"Hel", "lo"}, Usage: &fakeopenai.Usage{PromptTokens: 5, CompletionTokens: 2}})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	req := frontDoorRequest(t, map[string]any{"model": "x", "stream": true, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
	var raws []string
	var text strings.Builder
	req.OnRawChunk = func(raw []byte, delta string) error {
		raws = append(raws, string(raw))
		text.WriteString(delta)
		return nil
	}
	var plain collect
	res, err := p.Generate(context.Background(), req, plain.add)
	if err != nil {
		t.Fatal(err)
	}
	so, _ := s.Requests()[0].Body["stream_options"].(map[string]any)
	if so["include_usage"] != true {
		t.Errorf("stream_options = %v; want include_usage (the scheduler stores usage)", so)
	}
	// role chunk, two content chunks, finish chunk, usage chunk
	if len(raws) != 5 || !strings.Contains(raws[1], `"content":"Hel"`) || !strings.Contains(raws[4], `"prompt_tokens":5`) {
		t.Errorf("raw chunks = %q", raws)
	}
	if text.String() != "Hello" || res.Output != "Hello" || res.Usage != (providers.Usage{PromptTokens: 5, CompletionTokens: 2}) {
		t.Errorf("text %q, output %q, usage %+v", text.String(), res.Output, res.Usage)
	}
	if len(plain.chunks) != 0 {
		t.Errorf("the StreamFunc got %q; OnRawChunk takes its place", plain.chunks)
	}
}

func TestOpenAIPassthroughErrorKeepsTheStatus(t *testing.T) {
	s := newFake(t)
	s.Enqueue(fakeopenai.Reply{Status: 404, ErrorMessage: "The model `m` does not exist", ErrorCode: "model_not_found"})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "m"})
	_, err := p.Generate(context.Background(), frontDoorRequest(t, map[string]any{"messages": []any{}}), nil)
	pe := classified(t, err)
	if pe.Status != 404 || pe.Kind != providers.KindPermanent {
		t.Errorf("error = %+v; want a permanent 404", pe)
	}
}

func TestOpenAIEmbedPassesFrontDoorFieldsThrough(t *testing.T) {
	s := newFake(t)
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": s.BaseURL(), "model": "e"})
	req := textRequest(t, domain.TypeEmbedding, "some text", map[string]any{"openai": map[string]any{"dimensions": 3.0, "encoding_format": "base64"}})
	if _, err := p.Embed(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got := s.Requests()[0].Body
	if got["dimensions"] != 3.0 || got["encoding_format"] != "float" || got["input"] != "some text" {
		t.Errorf("upstream body = %v; want dimensions passed, floats asked for", got)
	}
}
