package server

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// dashboardFiles is the React dashboard as built by `npm run build` in
// frontend/. The build output is committed so that a clone with only Go
// serves the dashboard; CI rebuilds it and fails when it differs.
//
//go:embed all:dashboard/dist
var dashboardFiles embed.FS

func init() { mounts = append(mounts, mountDashboard) }

// reservedPrefixes belong to other handlers. The dashboard never answers
// them with index.html, so a mistyped API path is a 404, not a web page.
var reservedPrefixes = []string{"/api/", "/graphql", "/playground", "/monitoring", "/metrics"}

// dashboardCSP allows only the dashboard's own scripts, and GraphQL over
// fetch and websockets to the same host. Inline styles are allowed for the
// chart library's computed positions.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self'; connect-src 'self' ws: wss:; " +
	"frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"

func mountDashboard(s *Server) error {
	dist, err := fs.Sub(dashboardFiles, "dashboard/dist")
	if err != nil {
		return fmt.Errorf("dashboard assets: %w", err)
	}
	h, err := newDashboardHandler(dist)
	if err != nil {
		return err
	}
	// "/" without a method is the least specific pattern, so it never
	// conflicts with the API's routes and loses to all of them.
	s.mux.Handle("/", h)
	return nil
}

// dashboardHandler serves the single-page app: files from the build, and
// index.html for every other path so that client routes (/tasks/42) load
// the app on a reload or a shared link.
type dashboardHandler struct {
	files http.Handler
	dist  fs.FS
	index []byte
}

func newDashboardHandler(dist fs.FS) (*dashboardHandler, error) {
	index, err := fs.ReadFile(dist, "index.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard assets: %w (run `npm run build` in frontend/)", err)
	}
	return &dashboardHandler{files: http.FileServerFS(dist), dist: dist, index: index}, nil
}

func (h *dashboardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	for _, pre := range reservedPrefixes {
		if p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, pre) {
			http.NotFound(w, r)
			return
		}
	}
	name := strings.TrimPrefix(p, "/")
	if name != "" && name != "index.html" {
		if st, err := fs.Stat(h.dist, name); err == nil && !st.IsDir() {
			if strings.HasPrefix(name, "assets/") {
				// Names under assets/ carry a content hash.
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				w.Header().Set("Cache-Control", "no-cache")
			}
			h.files.ServeHTTP(w, r)
			return
		}
		if path.Ext(name) != "" {
			// A missing file (an old hashed asset, a typo) is a 404:
			// answering index.html would hand the browser HTML as a script.
			http.NotFound(w, r)
			return
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Security-Policy", dashboardCSP)
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(h.index))
}
