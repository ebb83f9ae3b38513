package providers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// errorFixture is one server's error answers (testdata/errors/*.json),
// written down from its public source or docs.
type errorFixture struct {
	Server string `json:"server"`
	Source string `json:"source"`
	Cases  []struct {
		Desc        string            `json:"desc"`
		Status      int               `json:"status"`
		Headers     map[string]string `json:"headers"`
		ContentType string            `json:"content_type"`
		Body        json.RawMessage   `json:"body"`
		BodyText    *string           `json:"body_text"`
		StreamEvent json.RawMessage   `json:"stream_event"`
		Kind        string            `json:"kind"`
		Message     string            `json:"message"`
		RetryAfter  float64           `json:"retry_after_seconds"`
	} `json:"cases"`
}

func loadErrorFixtures(t *testing.T) []errorFixture {
	t.Helper()
	files, err := filepath.Glob("testdata/errors/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no error fixtures: %v", err)
	}
	var out []errorFixture
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx errorFixture
		if err := json.Unmarshal(raw, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, fx)
	}
	return out
}

// rawServer answers every request with h.
func rawServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL + "/v1"
}

// TestErrorAnswersOfRealServers runs every fixture through the openai
// provider: HTTP errors (chat with and without streaming, embeddings) are
// classified by their status with the body's own message, whatever its
// shape; error events inside a stream by their code.
func TestErrorAnswersOfRealServers(t *testing.T) {
	for _, fx := range loadErrorFixtures(t) {
		for _, c := range fx.Cases {
			t.Run(fx.Server+"/"+c.Desc, func(t *testing.T) {
				base := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
					if c.StreamEvent != nil {
						w.Header().Set("Content-Type", "text/event-stream")
						fmt.Fprintf(w, "data: %s\n\n", `{"id":"1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}`)
						fmt.Fprintf(w, "data: %s\n\n", c.StreamEvent)
						return
					}
					for k, v := range c.Headers {
						w.Header().Set(k, v)
					}
					w.Header().Set("Content-Type", cmpOr(c.ContentType, "application/json"))
					w.WriteHeader(c.Status)
					if c.BodyText != nil {
						fmt.Fprint(w, *c.BodyText)
					} else {
						w.Write(c.Body)
					}
				})
				p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": base, "model": "m"})
				req := textRequest(t, domain.TypeTextGeneration, "hi", nil)
				calls := map[string]func() error{
					"stream": func() error { _, err := p.Generate(context.Background(), req, new(collect).add); return err },
				}
				if c.StreamEvent == nil {
					calls["plain"] = func() error { _, err := p.Generate(context.Background(), req, nil); return err }
					calls["embed"] = func() error { _, err := p.Embed(context.Background(), req); return err }
				}
				for name, call := range calls {
					err := call()
					pe := classified(t, err)
					if string(pe.Kind) != c.Kind || pe.Status != c.Status {
						t.Errorf("%s: kind %s status %d, want %s %d (%v)", name, pe.Kind, pe.Status, c.Kind, c.Status, err)
					}
					if !strings.Contains(err.Error(), c.Message) {
						t.Errorf("%s: error %q lacks the server's message %q", name, err, c.Message)
					}
					if strings.Contains(err.Error(), "unmarshal") || strings.Contains(err.Error(), "{\"") {
						t.Errorf("%s: error %q is a decoding error or raw JSON, not the message", name, err)
					}
					if want := time.Duration(c.RetryAfter * float64(time.Second)); pe.RetryAfter != want {
						t.Errorf("%s: retry after %s, want %s", name, pe.RetryAfter, want)
					}
					if c.StreamEvent != nil && pe.Partial != "Hel" {
						t.Errorf("%s: partial %q, want the text before the error event", name, pe.Partial)
					}
				}
			})
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestNotFoundNamesTheURLAsked: a 404 (a base_url without /v1) says which
// URL was asked, so the user can see what to fix.
func TestNotFoundNamesTheURLAsked(t *testing.T) {
	base := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":"Not Found","message":"Cannot POST %s"}`, r.URL.Path)
	})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": base + "?key=secret", "model": "m"})
	_, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), nil)
	want := "Not Found: Cannot POST /v1/chat/completions (POST " + base + "/chat/completions)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
}

// TestAWebPageIsNotAnAPI: a base_url that answers 200 with a web page
// fails at once, naming the URL and what came back, for chat (with and
// without streaming) and embeddings.
func TestAWebPageIsNotAnAPI(t *testing.T) {
	base := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><html><body><h1>Welcome</h1></body></html>")
	})
	p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": base, "model": "m"})
	req := textRequest(t, domain.TypeTextGeneration, "hi", nil)
	for name, call := range map[string]func() error{
		"stream": func() error { _, err := p.Generate(context.Background(), req, new(collect).add); return err },
		"plain":  func() error { _, err := p.Generate(context.Background(), req, nil); return err },
		"embed":  func() error { _, err := p.Embed(context.Background(), req); return err },
	} {
		err := call()
		pe := classified(t, err)
		path := "/chat/completions"
		if name == "embed" {
			path = "/embeddings"
		}
		want := "expected an OpenAI-compatible JSON or event-stream answer from " + base + path + ", got text/html; charset=utf-8"
		if pe.Kind != providers.KindPermanent || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v (kind %s), want permanent with %q", name, err, pe.Kind, want)
		}
	}
}

// TestStreamClosedByDoneWithoutFinishReasonCompletes: [DONE] ends an
// answer even when no chunk said why (the finish reason is then unknown);
// counts without usage are estimated and say so.
func TestStreamClosedByDoneWithoutFinishReasonCompletes(t *testing.T) {
	for _, tt := range []struct {
		desc, done string
	}{{"data: [DONE]", "data: [DONE]\n\n"}, {"data:[DONE] without a space", "data:[DONE]\n\n"}} {
		t.Run(tt.desc, func(t *testing.T) {
			base := rawServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, piece := range []string{"Hello", " there"} {
					fmt.Fprintf(w, "data: {\"id\":\"1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", piece)
					w.(http.Flusher).Flush()
				}
				fmt.Fprint(w, tt.done)
			})
			p := mustProvider(t, domain.ModelOpenAI, map[string]any{"base_url": base, "model": "m"})
			res, err := p.Generate(context.Background(), textRequest(t, domain.TypeTextGeneration, "hi", nil), new(collect).add)
			if err != nil {
				t.Fatalf("a stream closed by [DONE] failed: %v", err)
			}
			if res.Output != "Hello there" || res.FinishReason != providers.FinishUnknown || res.TokenSource != providers.TokensEstimated {
				t.Errorf("got output %q finish %q tokens %q, want %q %q %q", res.Output, res.FinishReason, res.TokenSource, "Hello there", providers.FinishUnknown, providers.TokensEstimated)
			}
		})
	}
}
