package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client speaks the scheduler's REST API.
type client struct {
	base   *url.URL
	apiKey string
	http   *http.Client
}

func newClient(c common) (*client, error) {
	u, err := url.Parse(strings.TrimRight(c.server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--server must be an http:// or https:// URL, got %q", c.server)
	}
	return &client{base: u, apiKey: c.apiKey, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// apiError is the REST error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// do sends a request (body encoded as JSON, with Content-Type:
// application/json on every write, as the server's CSRF defence asks) and
// decodes the answer's data into out.
func (c *client) do(ctx context.Context, method, path string, body, out any, headers ...string) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return usageErr("build request: %v", err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return err
		}
		return fail(ExitUnavailable, "cannot reach the scheduler at %s: %v", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fail(ExitUnavailable, "read the answer of %s %s: %v", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e apiError
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			msg = e.Error.Code + ": " + e.Error.Message
		}
		code := ExitRefused
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			code = ExitUnavailable
			if ra := resp.Header.Get("Retry-After"); ra != "" {
				msg += " (retry after " + ra + "s)"
			}
		}
		return fail(code, "%s %s: %d %s", method, path, resp.StatusCode, msg)
	}
	if out == nil {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || env.Data == nil {
		return fail(ExitUnavailable, "%s %s: unexpected answer %.200q", method, path, raw)
	}
	return json.Unmarshal(env.Data, out)
}

// wsURL is the GraphQL websocket endpoint.
func (c *client) wsURL() string {
	u := *c.base
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path = strings.TrimRight(u.Path, "/") + "/graphql"
	return u.String()
}
