//go:build security

package security

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The binary under test, set by scripts/ci.d/47-security.sh.
var (
	bin     = os.Getenv("LLMSCHED_BIN")
	cfgPath = os.Getenv("LLMSCHED_CONFIG")
	baseURL = os.Getenv("LLMSCHED_URL")
	logPath = os.Getenv("LLMSCHED_LOG")
)

var client = &http.Client{Timeout: 30 * time.Second}

var createdRe = regexp.MustCompile(`created API key (\d+) `)
var secretRe = regexp.MustCompile(`\b(lls_[0-9a-f]+)\b`)

// apikey runs the binary's apikey command (a separate process on the same
// database) and returns its output.
func apikey(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"apikey"}, append(args, "--config", cfgPath)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("apikey %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// newKey creates a key with the CLI and returns its id and secret.
func newKey(t *testing.T, role string) (int, string) {
	t.Helper()
	out := apikey(t, "create", "--name", fmt.Sprintf("sec-%s-%d", role, time.Now().UnixNano()), "--role", role)
	m, s := createdRe.FindStringSubmatch(out), secretRe.FindStringSubmatch(out)
	if m == nil || s == nil {
		t.Fatalf("apikey create output: %s", out)
	}
	id, _ := strconv.Atoi(m[1])
	return id, s[1]
}

func request(t *testing.T, method, path, key, contentType, body string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func serverLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// 1. A fragment fan-out query without a key is refused before it is walked.
func TestFragmentFanOut(t *testing.T) {
	var q strings.Builder
	q.WriteString("query{ ...F0 }")
	for i := range 30 {
		fmt.Fprintf(&q, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	q.WriteString(" fragment F30 on Query { systemHealth { status } }")
	body, _ := json.Marshal(map[string]string{"query": q.String()})
	code, resp := request(t, "POST", "/graphql", "", "application/json", string(body))
	if !strings.Contains(resp, "COMPLEXITY_LIMIT_EXCEEDED") {
		t.Fatalf("fan-out query: %d %s, want COMPLEXITY_LIMIT_EXCEEDED", code, resp)
	}
}

// 2. A key revoked by another process closes its open websocket (4403).
func TestRevokedKeyOnWebsocket(t *testing.T) {
	id, key := newKey(t, "operator")
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(baseURL, "http")+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer c.Close()
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authToken": key}}); err != nil {
		t.Fatal(err)
	}
	var ack map[string]any
	if err := c.ReadJSON(&ack); err != nil || ack["type"] != "connection_ack" {
		t.Fatalf("ack: %v %v", ack, err)
	}
	if err := c.WriteJSON(map[string]any{"id": "1", "type": "subscribe",
		"payload": map[string]any{"query": "subscription { taskEvents { taskID } }"}}); err != nil {
		t.Fatal(err)
	}
	apikey(t, "revoke", strconv.Itoa(id))
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			ce := new(websocket.CloseError)
			if !errors.As(err, &ce) || ce.Code != 4403 || !strings.Contains(ce.Text, "revoked") {
				t.Fatalf("websocket of a revoked key ended with %v, want close 4403 naming the revocation", err)
			}
			return
		}
	}
}

// 3. Another caller's Idempotency-Key is just a different key.
func TestIdempotencyAcrossCallers(t *testing.T) {
	_, admin := newKey(t, "admin")
	_, a := newKey(t, "submitter")
	_, b := newKey(t, "submitter")
	code, resp := request(t, "POST", "/api/v1/models", admin, "application/json",
		fmt.Sprintf(`{"name":"idem-%d","type":"simulator","status":"offline"}`, time.Now().UnixNano()))
	var m struct {
		Data struct{ ID int } `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &m); err != nil || code != http.StatusCreated {
		t.Fatalf("create model: %d %s", code, resp)
	}
	body := fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "private to A"}`, m.Data.ID)
	codeA, respA := request(t, "POST", "/api/v1/tasks", a, "application/json", body, "Idempotency-Key", "shared-key")
	codeB, respB := request(t, "POST", "/api/v1/tasks", b, "application/json", body, "Idempotency-Key", "shared-key")
	var ta, tb struct {
		Data struct{ ID int } `json:"data"`
	}
	_ = json.Unmarshal([]byte(respA), &ta)
	_ = json.Unmarshal([]byte(respB), &tb)
	if codeA != http.StatusCreated || codeB != http.StatusCreated || ta.Data.ID == 0 || ta.Data.ID == tb.Data.ID {
		t.Fatalf("A: %d %s; B: %d %s; want two tasks", codeA, respA, codeB, respB)
	}
	if code, _ := request(t, "GET", fmt.Sprintf("/api/v1/tasks/%d", ta.Data.ID), b, "", ""); code != http.StatusNotFound {
		t.Fatalf("B reads A's task: %d, want 404", code)
	}
}

// 4. Cross-site form and text/plain POSTs cannot act.
func TestCSRF(t *testing.T) {
	_, admin := newKey(t, "admin")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		code, resp := request(t, "POST", "/api/v1/models", admin, ct, `{"name":"csrf","type":"simulator"}`)
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("%s POST: %d %s, want 415", ct, code, resp)
		}
	}
	code, resp := request(t, "POST", "/api/v1/tasks/1/cancel", admin, "", "", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	if code != http.StatusForbidden {
		t.Errorf("cross-site body-less POST: %d %s, want 403", code, resp)
	}
}

// 5. A model may not target the scheduler itself or cloud metadata.
func TestSSRF(t *testing.T) {
	_, admin := newKey(t, "admin")
	for _, target := range []string{baseURL + "/metrics", "http://169.254.169.254/latest/meta-data/"} {
		body, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("ssrf-%d", time.Now().UnixNano()), "type": "custom",
			"config": map[string]any{"url": target, "body": map[string]any{"p": "{{prompt}}"}, "response_path": "x"}})
		code, resp := request(t, "POST", "/api/v1/models", admin, "application/json", string(body))
		if code != http.StatusBadRequest || !strings.Contains(resp, "config.url") {
			t.Errorf("model aimed at %s: %d %s, want 400 naming config.url", target, code, resp)
		}
	}
}

// 6. A malformed GraphQL body is refused and neither echoed nor logged.
func TestBodyNotLogged(t *testing.T) {
	marker := fmt.Sprintf("sk-body-marker-%d", time.Now().UnixNano())
	code, resp := request(t, "POST", "/graphql", "", "application/json", `{"query": "{ x }", "api_key": "`+marker+`"`)
	if code != http.StatusBadRequest || strings.Contains(resp, marker) {
		t.Fatalf("malformed body: %d %s, want 400 without the body", code, resp)
	}
	if log := serverLog(t); strings.Contains(log, marker) || strings.Contains(log, `"level":"ERROR"`) {
		t.Fatalf("the server log holds the malformed body or an ERROR line:\n%s", log)
	}
}

// 7. Nested and URL credentials are masked for viewers and kept out of
// task errors and the log.
func TestSecretMasking(t *testing.T) {
	_, admin := newKey(t, "admin")
	_, viewer := newKey(t, "viewer")
	nested, query := fmt.Sprintf("nested-%d-abcdef", time.Now().UnixNano()), fmt.Sprintf("q%dabcdef", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("mask-%d", time.Now().UnixNano()), "type": "custom", "config": map[string]any{
		"url":  "http://127.0.0.1:1/gen?key=" + query,
		"body": map[string]any{"p": "{{prompt}}"}, "response_path": "x",
		"auth": map[string]any{"token": nested}, "openaiApiKey": nested + "-camel",
	}})
	code, resp := request(t, "POST", "/api/v1/models", admin, "application/json", string(body))
	if code != http.StatusCreated {
		t.Fatalf("create model: %d %s", code, resp)
	}
	var m struct {
		Data struct{ ID int } `json:"data"`
	}
	_ = json.Unmarshal([]byte(resp), &m)
	_, shown := request(t, "GET", fmt.Sprintf("/api/v1/models/%d", m.Data.ID), viewer, "", "")
	task := fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hi"}`, m.Data.ID)
	code, resp = request(t, "POST", "/api/v1/tasks", admin, "application/json", task)
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %s", code, resp)
	}
	var tk struct {
		Data struct{ ID int } `json:"data"`
	}
	_ = json.Unmarshal([]byte(resp), &tk)
	// The upstream refuses connections: the task's error quotes the URL.
	var seen string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, seen = request(t, "GET", fmt.Sprintf("/api/v1/tasks/%d", tk.Data.ID), admin, "", "")
		if strings.Contains(seen, `"error":"`) {
			break
		}
	}
	for _, s := range []string{nested, query} {
		if strings.Contains(shown, s) || strings.Contains(seen, s) || strings.Contains(serverLog(t), s) {
			t.Errorf("%q leaks (model as a viewer sees it: %s; task: %s)", s, shown, seen)
		}
	}
}

// 8. Slowloris: a stalled body is cut at server.read_timeout (408).
func TestSlowloris(t *testing.T) {
	c, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	// GraphQL reads the body before it looks at the key: no key needed.
	fmt.Fprintf(c, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("stalled body not cut: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}
}
