package webhooks_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/webhooks"
)

// docSnippet returns the first fenced block of lang in docs/webhooks.md.
func docSnippet(t *testing.T, lang string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "webhooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindSubmatch(raw)
	if m == nil {
		t.Fatalf("docs/webhooks.md has no %s block", lang)
	}
	return string(m[1])
}

// Harnesses read {"secret","header","body" (base64),"now"} on stdin and
// print "ok" or "error: ..." using the documented function.
const goHarnessImports = `import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
)

`

const goHarness = `
func main() {
	var in struct {
		Secret, Header, Body string
		Now                  int64
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	body, _ := base64.StdEncoding.DecodeString(in.Body)
	if err := VerifyWebhook(in.Secret, in.Header, body, time.Unix(in.Now, 0)); err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("ok")
}
`

const pyHarness = `
import base64, json, sys
_in = json.load(sys.stdin)
try:
    verify_webhook(_in["secret"], _in["header"], base64.b64decode(_in["body"]), now=_in["now"])
    print("ok")
except ValueError as e:
    print("error:", e)
`

const jsHarness = `
let _raw = "";
process.stdin.on("data", (c) => (_raw += c));
process.stdin.on("end", () => {
  const _in = JSON.parse(_raw);
  try {
    verifyWebhook(_in.secret, _in.header, Buffer.from(_in.body, "base64"), _in.now);
    console.log("ok");
  } catch (e) {
    console.log("error: " + e.message);
  }
});
`

type sigCase struct {
	name, secret, header string
	body                 []byte
	now                  int64
	ok                   bool
}

// The verification snippets of docs/webhooks.md, run as documented on a
// request the scheduler really sent, a forged body, a wrong secret and a
// replayed (old) timestamp.
func TestDocSnippetsVerify(t *testing.T) {
	header, body := captureWebhook(t)
	ts, _ := strconv.ParseInt(strings.TrimPrefix(strings.Split(header, ",")[0], "t="), 10, 64)
	forged := bytes.Replace(body, []byte(`"completed"`), []byte(`"failed"`), 1)
	if bytes.Equal(forged, body) {
		t.Fatalf("body %s has no status to forge", body)
	}
	cases := []sigCase{
		{"real", testSecret, header, body, ts + 2, true},
		{"forged body", testSecret, header, forged, ts + 2, false},
		{"wrong secret", "whsec_someone_else_entirely_0000", header, body, ts + 2, false},
		{"replayed 10 minutes later", testSecret, header, body, ts + 600, false},
		{"no v1", testSecret, "t=" + strconv.FormatInt(ts, 10), body, ts, false},
	}
	dir := t.TempDir()
	t.Run("go", func(t *testing.T) {
		src := filepath.Join(dir, "verify.go")
		if err := os.WriteFile(src, []byte("package main\n\n"+goHarnessImports+docSnippet(t, "go")+goHarness), 0o644); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "verify")
		if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
			t.Fatalf("build the Go snippet: %v\n%s", err, out)
		}
		runSnippet(t, cases, "Go", func() *exec.Cmd { return exec.Command(bin) })
	})
	t.Run("python", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 not installed")
		}
		src := filepath.Join(dir, "verify.py")
		if err := os.WriteFile(src, []byte(docSnippet(t, "python")+pyHarness), 0o644); err != nil {
			t.Fatal(err)
		}
		runSnippet(t, cases, "Python", func() *exec.Cmd { return exec.Command(py, src) })
	})
	t.Run("node", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node not installed")
		}
		src := filepath.Join(dir, "verify.js")
		if err := os.WriteFile(src, []byte(docSnippet(t, "js")+jsHarness), 0o644); err != nil {
			t.Fatal(err)
		}
		runSnippet(t, cases, "Node", func() *exec.Cmd { return exec.Command(node, src) })
	})
}

// captureWebhook runs a task with a callback and returns the signature
// header and body of the webhook the scheduler sent.
func captureWebhook(t *testing.T) (header string, body []byte) {
	t.Helper()
	type captured struct {
		header string
		body   []byte
	}
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		select {
		case got <- captured{r.Header.Get(webhooks.SignatureHeader), raw}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	e := apptest.New(t, hookConfig(nil))
	m := e.Simulator("hook-docs", 1, map[string]any{"latency_ms": 1})
	e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "héllo \"quoted\"", "callback_url": srv.URL})
	var c captured
	select {
	case c = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook")
	}
	return c.header, c.body
}

// runSnippet runs the named language's snippet, made by cmd, on each case
// and checks it prints ok for the valid ones and error: for the others.
func runSnippet(t *testing.T, cases []sigCase, name string, cmd func() *exec.Cmd) {
	t.Helper()
	for _, tc := range cases {
		in, _ := json.Marshal(map[string]any{"secret": tc.secret, "header": tc.header,
			"body": base64.StdEncoding.EncodeToString(tc.body), "now": tc.now})
		x := cmd()
		x.Stdin = bytes.NewReader(in)
		out, err := x.CombinedOutput()
		if err != nil {
			t.Fatalf("%s snippet, %s: %v\n%s", name, tc.name, err, out)
		}
		res := strings.TrimSpace(string(out))
		if (res == "ok") != tc.ok || (!tc.ok && !strings.HasPrefix(res, "error:")) {
			t.Fatalf("%s snippet, %s: printed %q, want ok=%v", name, tc.name, res, tc.ok)
		}
	}
}
