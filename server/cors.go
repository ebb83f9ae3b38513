package server

import (
	"net/http"
	"slices"
	"strings"
)

// CORS for browser clients on the origins in server.cors_origins (none by
// default: then no response carries CORS headers and browsers keep other
// sites' pages out). Credentials are never allowed: callers authenticate
// with an API key in Authorization, which a page must send explicitly.

// corsHeaders are the request headers any allowed page may send.
var corsHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"}

// openAICORSHeaders are the further headers a browser OpenAI SDK sends on
// /v1 (the openai npm package with dangerouslyAllowBrowser: its platform
// and retry headers, X-Stainless-*, allowed as a family below), and the
// front door's own X-Priority and X-Queue-Timeout (docs/openai.md).
var openAICORSHeaders = []string{"Accept", "User-Agent", "OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta",
	"X-Priority", "X-Queue-Timeout"}

// stainlessPrefix names the OpenAI SDKs' header family (X-Stainless-Lang,
// -Package-Version, -OS, -Arch, -Runtime, -Runtime-Version, -Retry-Count,
// -Timeout, -Helper-Method, ...): new members come with SDK releases, so
// the family is allowed rather than a list that goes stale.
const stainlessPrefix = "x-stainless-"

// corsExposed are the response headers a page's script may read: a
// front-door answer's task, a 429's Retry-After (the SDKs' retry wait)
// and the request id to quote in a report.
const corsExposed = "X-Task-ID, Retry-After, X-Request-ID"

// corsMaxAge lets a browser reuse a preflight for ten minutes (Chromium
// caps it at two hours), instead of one OPTIONS before every call.
const corsMaxAge = "600"

// cors sets the CORS headers of a request from an allowed origin and
// reports whether it was a preflight (answered here, 204).
func cors(w http.ResponseWriter, r *http.Request, origins []string) (preflight bool) {
	o := r.Header.Get("Origin")
	if o == "" || !slices.Contains(origins, o) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", o)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", corsExposed)
	if r.Method != http.MethodOptions {
		return false
	}
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", strings.Join(allowedHeaders(r), ", "))
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// allowedHeaders is the Access-Control-Allow-Headers of a preflight: the
// headers every page may send, on /v1 the OpenAI SDKs' too, and those of
// the requested X-Stainless-* headers that are well-formed names.
func allowedHeaders(r *http.Request) []string {
	allowed := slices.Clone(corsHeaders)
	if r.URL.Path != "/v1" && !strings.HasPrefix(r.URL.Path, "/v1/") {
		return allowed
	}
	allowed = append(allowed, openAICORSHeaders...)
	for _, line := range r.Header.Values("Access-Control-Request-Headers") {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if strings.HasPrefix(name, stainlessPrefix) && len(name) > len(stainlessPrefix) && len(name) <= 64 && isToken(name) &&
				!slices.Contains(allowed, name) {
				allowed = append(allowed, name)
			}
		}
	}
	return allowed
}

// isToken reports whether s is made of the letters, digits and hyphens of
// a header name (what is reflected into a response header stays plain).
func isToken(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
