package graph_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/llmsched/llm-scheduler/graph"
)

// bareHandler is the GraphQL handler without services: enough for every
// refusal that happens before a resolver runs. Its log is returned.
func bareHandler(t testing.TB, introspection bool) (*handler.Server, *bytes.Buffer) {
	var logs bytes.Buffer
	h := graph.NewHandler(graph.HandlerOptions{
		Resolver:      &graph.Resolver{},
		Log:           slog.New(slog.NewTextHandler(&logs, nil)),
		Introspection: introspection,
	})
	return h, &logs
}

func serveQuery(h http.Handler, body string) (int, gqlResponse, string) {
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out gqlResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out, rec.Body.String()
}

func queryBody(q string) string {
	b, _ := json.Marshal(map[string]any{"query": q})
	return string(b)
}

// fanOut is the attack: each fragment spreads the next one twice,
// so n fragments expand to 2^n selections.
func fanOut(n int) string {
	var b strings.Builder
	b.WriteString("query{ ...F0 }")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Query { systemHealth { status } }", n)
	return b.String()
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuOf serves one request on a locked thread and returns the CPU it used.
// cpuOf serves body three times and returns the least CPU time the
// serving thread spent on it, and the answer: a query's own cost, without
// what a loaded machine adds to one run (cache misses, a collection's
// assist falling on it).
func cpuOf(h http.Handler, body string) (time.Duration, gqlResponse) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var least time.Duration
	var out gqlResponse
	for i := range 3 {
		start := threadCPU()
		_, out, _ = serveQuery(h, body)
		if cpu := threadCPU() - start; i == 0 || cpu < least {
			least = cpu
		}
	}
	return least, out
}

func TestFragmentFanOutIsRefusedCheaply(t *testing.T) {
	h, _ := bareHandler(t, false)
	for _, n := range []int{13, 20, 30, 62} {
		_, out, raw := serveQuery(h, queryBody(fanOut(n)))
		if len(out.Errors) != 1 || out.Errors[0].code() != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Fatalf("fan-out %d: %s", n, raw)
		}
	}
	// The count saturates instead of overflowing or walking 2^62 paths.
	doc, err := parser.ParseQuery(&ast.Source{Input: fanOut(62)})
	if err != nil {
		t.Fatal(err)
	}
	if n := graph.ExpandedSelections(doc, 5000); n != 5001 {
		t.Fatalf("ExpandedSelections = %d, want 5001", n)
	}
	// Below the limit a fan-out is counted exactly.
	doc, _ = parser.ParseQuery(&ast.Source{Input: fanOut(10)})
	if n := graph.ExpandedSelections(doc, 5000); n != 2*1024 {
		t.Fatalf("ExpandedSelections = %d, want %d (1024 systemHealth { status })", n, 2*1024)
	}
}

func TestLongQueryDocumentsAreRefusedUnparsed(t *testing.T) {
	h, _ := bareHandler(t, false)
	_, out, raw := serveQuery(h, queryBody("{ __typename }"+strings.Repeat(" ", 256<<10)))
	if len(out.Errors) != 1 || out.Errors[0].code() != "COMPLEXITY_LIMIT_EXCEEDED" || !strings.Contains(out.Errors[0].Message, "pass data in variables") {
		t.Fatalf("%.300s", raw)
	}
}

func TestRepeatedKeysAreRefused(t *testing.T) {
	h, _ := bareHandler(t, false)
	for desc, q := range map[string]string{
		"one field many times":    "{" + strings.Repeat(" __typename", 21) + "}",
		"one alias many times":    "{" + strings.Repeat(" a: __typename", 21) + "}",
		"through fragments":       "query{ ...A ...A ...B } fragment A on Query {" + strings.Repeat(" __typename", 8) + "} fragment B on Query {" + strings.Repeat(" __typename", 5) + "}",
		"through inline fragment": "{ __typename ... on Query {" + strings.Repeat(" __typename", 20) + "} }",
		"nested":                  "{ systemHealth {" + strings.Repeat(" status", 21) + "} }",
	} {
		_, out, raw := serveQuery(h, queryBody(q))
		if len(out.Errors) != 1 || out.Errors[0].code() != "COMPLEXITY_LIMIT_EXCEEDED" || !strings.Contains(out.Errors[0].Message, "the limit is 20") {
			t.Errorf("%s: %s", desc, raw)
		}
	}
	// Twenty is fine.
	if _, out, raw := serveQuery(h, queryBody("{"+strings.Repeat(" __typename", 20)+"}")); len(out.Errors) > 0 {
		t.Fatalf("20 repeats refused: %s", raw)
	}
}

// No query of any shape costs more than 100 ms of CPU before it is
// answered or refused: fragment fan-outs, repeated keys, wide and deep
// documents, from a seeded generator and the known worst cases, up to the
// size server.max_body_bytes allows by default. On a loaded machine the
// budget grows to three times what reading and decoding a body of that
// largest size costs in the same run: a query may cost what its bytes
// cost, never what its shape could multiply them into.
func TestNoQueryCostsMoreThanABudget(t *testing.T) {
	h, _ := bareHandler(t, true)
	budget := max(100*time.Millisecond*raceSlowdown, 3*decodeCPU(7<<20))
	t.Logf("budget %s", budget)
	worst := []string{
		fanOut(30),
		fanOut(12),
		"{" + strings.Repeat(" __typename", 4999) + "}",
		"{" + strings.Repeat(" systemHealth { status }", 2499) + "}",
		"{" + strings.Repeat(" __typename", 20) + strings.Repeat(" systemHealth {"+strings.Repeat(" status", 20)+"}", 20) + "}",
		"query{ ...F0 } fragment F0 on Query {" + strings.Repeat(" ...F1", 4000) + "} fragment F1 on Query { __typename }",
		"{" + strings.Repeat(" ...on Query {", 2000) + "__typename" + strings.Repeat("}", 2000) + "}",
		"{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
		"{" + aliases(1999) + "}",
		"{" + aliases(4999) + "}",
		"# " + strings.Repeat("x", 250<<10) + "\n{ __typename }",
		"# " + strings.Repeat("x", 7<<20) + "\n{ __typename }",
	}
	rng := rand.New(rand.NewPCG(14, 14))
	for i := 0; i < 300; i++ {
		worst = append(worst, randomDocument(rng))
	}
	// Data travels in variables: 7 MB of them with a small query.
	big, _ := json.Marshal(map[string]any{"query": "query($x: String) { __typename }", "variables": map[string]any{"x": strings.Repeat("y", 7<<20)}})
	var most time.Duration
	bodies := []string{string(big)}
	for _, q := range worst {
		bodies = append(bodies, queryBody(q))
	}
	for i, body := range bodies {
		q := body
		cpu, _ := cpuOf(h, body)
		if cpu > budget {
			t.Errorf("query %d (%d bytes, %.80q...) cost %s of CPU, budget %s", i, len(q), q, cpu, budget)
		}
		if cpu > most {
			t.Logf("query %d (%d bytes): %s", i, len(q), cpu)
		}
		most = maxDur(most, cpu)
	}
	t.Logf("most CPU for one query: %s", most)
}

// decodeCPU is the least CPU time, of three, this thread spends decoding
// a JSON request body of n bytes (a string variable) with encoding/json.
func decodeCPU(n int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	body, _ := json.Marshal(map[string]any{"query": "{ __typename }", "variables": map[string]any{"x": strings.Repeat("y", n)}})
	var least time.Duration
	for i := range 3 {
		start := threadCPU()
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			panic(err)
		}
		if cpu := threadCPU() - start; i == 0 || cpu < least {
			least = cpu
		}
	}
	return least
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func aliases(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, " a%d: __typename", i)
	}
	return b.String()
}

// randomDocument builds an acyclic document of fragments on Query that
// spread later fragments a random number of times, mixed with repeated,
// aliased and nested fields and inline fragments.
func randomDocument(rng *rand.Rand) string {
	nfrag := 1 + rng.IntN(40)
	leaf := func() string {
		switch rng.IntN(4) {
		case 0:
			return "__typename"
		case 1:
			return fmt.Sprintf("k%d: __typename", rng.IntN(5))
		case 2:
			return "systemHealth { status " + strings.Repeat("status ", rng.IntN(25)) + "}"
		default:
			return "... on Query { __typename }"
		}
	}
	var b strings.Builder
	b.WriteString("query{ ...F0 }")
	for i := 0; i < nfrag; i++ {
		fmt.Fprintf(&b, " fragment F%d on Query {", i)
		for j, n := 0, 1+rng.IntN(6); j < n; j++ {
			if i+1 < nfrag && rng.IntN(2) == 0 {
				fmt.Fprintf(&b, " ...F%d", i+1+rng.IntN(nfrag-i-1))
			} else {
				b.WriteString(" " + strings.Repeat(leaf()+" ", 1+rng.IntN(30)))
			}
		}
		b.WriteString("}")
	}
	return b.String()
}

func TestIntrospectionDisabledIsAClientError(t *testing.T) {
	h, logs := bareHandler(t, false)
	for _, q := range []string{
		`{ __schema { queryType { name } } }`,
		`{ __type(name: "Query") { name } }`,
		`query { ...I } fragment I on Query { __schema { types { name } } }`,
	} {
		_, out, raw := serveQuery(h, queryBody(q))
		if len(out.Errors) != 1 || out.Errors[0].code() != "INTROSPECTION_DISABLED" {
			t.Fatalf("%s: %s", q, raw)
		}
	}
	if _, out, raw := serveQuery(h, queryBody(`{ __typename }`)); len(out.Errors) > 0 {
		t.Fatalf("__typename refused: %s", raw)
	}
	if strings.Contains(logs.String(), "ERROR") {
		t.Fatalf("refused introspection logged as an error:\n%s", logs)
	}
}

func TestMalformedBodiesAreClientErrorsAndNotLogged(t *testing.T) {
	h, logs := bareHandler(t, true)
	const secret = "sk-live-0123456789abcdef"
	for _, body := range []string{
		`[{"query": "{ __typename }"}, {"query": "{ __typename }"}]`,
		`{"query": "{ __typename }", "variables": {"api_key": "` + secret + `"`,
		`{"query": 5, "api_key": "` + secret + `"}`,
		`{"query": "{ __typename }", "variables": {` + strings.Repeat(`"k":"`+secret+`",`, 10000),
	} {
		code, out, raw := serveQuery(h, body)
		if code != http.StatusBadRequest || len(out.Errors) != 1 || out.Errors[0].code() != "BAD_REQUEST" {
			t.Fatalf("%.60s: %d %s", body, code, raw)
		}
		if strings.Contains(raw, secret) {
			t.Fatalf("response repeats the body: %s", raw)
		}
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "ERROR") {
		t.Fatalf("malformed bodies logged:\n%.500s", logs)
	}
}
