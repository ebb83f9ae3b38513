package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

// sdkBrowserHeaders are the request headers the openai npm SDK (6.x, with
// dangerouslyAllowBrowser) sets on a chat completion besides the
// CORS-safelisted ones, as a browser lists them in a preflight's
// Access-Control-Request-Headers (lower case), plus the front door's own.
var sdkBrowserHeaders = []string{
	"authorization", "content-type", "user-agent", "openai-organization", "openai-project",
	"x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
	"x-stainless-retry-count", "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout",
	"x-priority", "x-queue-timeout",
}

// headerList splits a comma-separated header value into lower-case names.
func headerList(v string) []string {
	var out []string
	for n := range strings.SplitSeq(v, ",") {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func TestOpenAICORSLetsABrowserSDKThrough(t *testing.T) {
	const origin = "https://app.example.test"
	env := apptest.New(t, func(c *config.Config) { c.Server.CORSOrigins = []string{origin} })
	fake := fakeopenai.New()
	t.Cleanup(fake.Close)
	env.CreateModel("gpt-browser", "openai", 2, map[string]any{"base_url": fake.BaseURL(), "model": "upstream"})
	url := env.URL + "/v1/chat/completions"

	t.Run("preflight allows the SDK's headers", func(t *testing.T) {
		code, h, _ := raw(t, "OPTIONS", url, "", "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", strings.Join(sdkBrowserHeaders, ","))
		if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("preflight: %d, Allow-Origin %q; want 204 and %q", code, h.Get("Access-Control-Allow-Origin"), origin)
		}
		allowed := headerList(h.Get("Access-Control-Allow-Headers"))
		for _, want := range sdkBrowserHeaders {
			if !slices.Contains(allowed, want) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
			}
		}
		if !slices.Contains(headerList(h.Get("Access-Control-Allow-Methods")), "post") {
			t.Errorf("Access-Control-Allow-Methods = %q", h.Get("Access-Control-Allow-Methods"))
		}
		if h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("credentials allowed: %q", h.Get("Access-Control-Allow-Credentials"))
		}
	})

	t.Run("preflight does not echo other headers", func(t *testing.T) {
		_, h, _ := raw(t, "OPTIONS", url, "", "Origin", origin, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "x-stainless-lang, x-evil, x-stainless-bad\"name")
		allowed := headerList(h.Get("Access-Control-Allow-Headers"))
		if !slices.Contains(allowed, "x-stainless-lang") || slices.Contains(allowed, "x-evil") ||
			strings.Contains(h.Get("Access-Control-Allow-Headers"), `"`) {
			t.Errorf("Access-Control-Allow-Headers = %q; want the SDK family only", h.Get("Access-Control-Allow-Headers"))
		}
	})

	t.Run("the answer exposes the task and retry headers", func(t *testing.T) {
		hdr := []string{"Origin", origin, "X-Stainless-Lang", "js", "X-Stainless-Retry-Count", "0", "OpenAI-Organization", "org-x"}
		code, h, body := raw(t, "POST", url, `{"model":"gpt-browser","messages":[{"role":"user","content":"hi"}]}`, hdr...)
		if code != http.StatusOK || h.Get("X-Task-ID") == "" {
			t.Fatalf("POST: %d %s (X-Task-ID %q)", code, body, h.Get("X-Task-ID"))
		}
		if h.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("Allow-Origin = %q", h.Get("Access-Control-Allow-Origin"))
		}
		exposed := headerList(h.Get("Access-Control-Expose-Headers"))
		for _, want := range []string{"x-task-id", "retry-after", "x-request-id"} {
			if !slices.Contains(exposed, want) {
				t.Errorf("Access-Control-Expose-Headers %q lacks %s", h.Get("Access-Control-Expose-Headers"), want)
			}
		}
	})

	t.Run("other origins get no CORS headers", func(t *testing.T) {
		code, h, _ := raw(t, "OPTIONS", url, "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization,content-type")
		for _, k := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Headers", "Access-Control-Expose-Headers"} {
			if h.Get(k) != "" {
				t.Errorf("%d: %s = %q for a disallowed origin", code, k, h.Get(k))
			}
		}
	})
}

func TestNoCORSUnlessConfigured(t *testing.T) {
	env := apptest.New(t, nil)
	for _, path := range []string{"/v1/chat/completions", "/api/v1/tasks"} {
		_, h, _ := raw(t, "OPTIONS", env.URL+path, "", "Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization,content-type")
		for k := range h {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: %s = %q with no server.cors_origins", path, k, h.Get(k))
			}
		}
	}
}
