package server

import (
	"mime"
	"net/http"
	"strings"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// CodeUnsupportedMediaType is the error code of a state-changing request
// whose body is not JSON (HTTP 415).
const CodeUnsupportedMediaType scheduler.Code = "UNSUPPORTED_MEDIA_TYPE"

// csrf refuses state-changing requests that a web page on another site
// could make a browser send without asking first (a "simple" request: an
// HTML form or a no-cors fetch, with the victim's network position and,
// for /monitoring, its Basic credentials).
//
//   - A body must be JSON (Content-Type application/json or +json), which a
//     browser sends cross-site only after a CORS preflight that
//     server.cors_origins decides; form, multipart and text/plain bodies
//     get 415. A request that carries X-Requested-With (a custom header,
//     which also forces a preflight) is accepted with any body type.
//   - A request without a body (DELETE /api/v1/tasks/{id}, POST .../retry)
//     is refused (403) when the browser marks it cross-site (Sec-Fetch-Site)
//     or its Origin is neither this server nor in server.cors_origins.
//
// Clients outside a browser (curl, SDKs, the CLI) send no Origin; they only
// need Content-Type: application/json on requests with a body.
func csrf(r *http.Request, origins []string) (int, *scheduler.Error) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return 0, nil
	}
	if r.Header.Get("X-Requested-With") != "" {
		return 0, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" || hasBody(r) {
		mt, _, _ := mime.ParseMediaType(ct)
		if mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
			return 0, nil
		}
		return http.StatusUnsupportedMediaType, &scheduler.Error{Code: CodeUnsupportedMediaType,
			Message: "Content-Type must be application/json for " + r.Method + " requests with a body, got " + quoteOr(ct, "none")}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" || !originAllowed(r, origins) {
		return http.StatusForbidden, &scheduler.Error{Code: scheduler.CodeForbidden,
			Message: "cross-site " + r.Method + " refused: origin " + quoteOr(r.Header.Get("Origin"), "unknown") + " is not allowed (server.cors_origins)"}
	}
	return 0, nil
}

// hasBody reports whether a request carries a body (a length, or chunks).
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

func quoteOr(s, none string) string {
	if s == "" {
		return none
	}
	return `"` + s + `"`
}
