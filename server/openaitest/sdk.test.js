// The official openai npm SDK against a running llm-scheduler's OpenAI
// front door (/v1), as an application would use it: only its base URL
// points at the scheduler. The scheduler runs with auth on; the upstream
// is a small OpenAI-compatible server made here. Environment (set by
// scripts/ci.d/48-openai-sdks.sh): LLMSCHED_URL, and the keys
// LLMSCHED_ADMIN_KEY, LLMSCHED_SUBMITTER_KEY, LLMSCHED_VIEWER_KEY,
// LLMSCHED_REVOKED_KEY. The server runs with QUEUE_MAX_RETRIES=0 and
// QUEUE_MAX_QUEUE_SIZE=20.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import OpenAI from "openai";

const base = process.env.LLMSCHED_URL;
const keys = {
  admin: process.env.LLMSCHED_ADMIN_KEY,
  submitter: process.env.LLMSCHED_SUBMITTER_KEY,
  viewer: process.env.LLMSCHED_VIEWER_KEY,
  revoked: process.env.LLMSCHED_REVOKED_KEY,
};

// The upstream: chat completions (JSON or SSE) answering "echo: " and the
// last user message, or an error when that message is "status:NNN";
// embeddings derived from the input.
const vector = (s) => {
  const v = [0, 0, 0, 0];
  for (let i = 0; i < s.length; i++) v[i % 4] += s.charCodeAt(i) / 1000;
  return v;
};
let upstream;
let upstreamURL;

function serveUpstream(req, res) {
  let raw = "";
  req.on("data", (c) => (raw += c));
  req.on("end", () => {
    const body = JSON.parse(raw || "{}");
    const send = (status, v) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(v));
    };
    if (req.url.endsWith("/embeddings")) {
      const inputs = Array.isArray(body.input) ? body.input : [body.input];
      return send(200, {
        object: "list", model: body.model,
        data: inputs.map((s, i) => ({ object: "embedding", index: i, embedding: vector(s) })),
        usage: { prompt_tokens: 2, total_tokens: 2 },
      });
    }
    const last = [...body.messages].reverse().find((m) => m.role === "user").content;
    const m = /^status:(\d+)$/.exec(last);
    if (m) {
      return send(Number(m[1]), { error: { message: `upstream says ${m[1]}`, type: "server_error", param: null, code: null } });
    }
    const words = ["echo: ", ...last.split(" ").map((w, i, a) => (i < a.length - 1 ? w + " " : w))];
    const usage = { prompt_tokens: 3, completion_tokens: words.length, total_tokens: 3 + words.length };
    const id = "chatcmpl-upstream";
    if (!body.stream) {
      return send(200, {
        id, object: "chat.completion", created: 1, model: body.model, system_fingerprint: "fp_up",
        choices: [{ index: 0, message: { role: "assistant", content: words.join("") }, finish_reason: "stop", logprobs: null }],
        usage,
      });
    }
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    const chunk = (delta, finish) => ({ id, object: "chat.completion.chunk", created: 1, model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] });
    const events = [chunk({ role: "assistant", content: "" }, null), ...words.map((w) => chunk({ content: w }, null)), chunk({}, "stop")];
    if (body.stream_options?.include_usage) {
      events.push({ id, object: "chat.completion.chunk", created: 1, model: body.model, choices: [], usage });
    }
    for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
    res.end("data: [DONE]\n\n");
  });
}

async function rest(method, path, body, key = keys.admin) {
  const r = await fetch(base + path, {
    method,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const client = (key = keys.submitter, opts = {}) =>
  new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 30_000, ...opts });

let parkedID;

before(async () => {
  upstream = http.createServer(serveUpstream);
  await new Promise((ok) => upstream.listen(0, "127.0.0.1", ok));
  upstreamURL = `http://127.0.0.1:${upstream.address().port}/v1`;
  for (const [name, status] of [["node-up", "online"], ["node-parked", "offline"]]) {
    const r = await rest("POST", "/api/v1/models", {
      name, type: "openai", max_workers: 2, status, config: { base_url: upstreamURL, model: "upstream-model", api_key: "sk-upstream" },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    if (status === "offline") parkedID = r.body.data.id;
  }
});

after(() => upstream.close());

const storedTask = async (response) => {
  const id = response.headers.get("x-task-id");
  assert.ok(id, "X-Task-ID header");
  for (let i = 0; i < 100; i++) {
    const r = await rest("GET", `/api/v1/tasks/${id}`);
    if (["completed", "failed", "cancelled"].includes(r.body.data.status)) return r.body.data;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  throw new Error(`task ${id} did not end`);
};

test("chat, not streamed: the upstream's answer, stored as a task", async () => {
  const { data, response } = await client().chat.completions
    .create({ model: "node-up", messages: [{ role: "user", content: "hello queue" }], seed: 3 })
    .withResponse();
  assert.equal(data.id, "chatcmpl-upstream");
  assert.equal(data.system_fingerprint, "fp_up");
  assert.equal(data.choices[0].message.content, "echo: hello queue");
  assert.equal(data.usage.completion_tokens, 3);
  const task = await storedTask(response);
  assert.equal(task.status, "completed");
  assert.equal(task.output, data.choices[0].message.content);
});

test("chat, streamed: text assembled from chunks equals the stored output", async () => {
  const { data: stream, response } = await client().chat.completions
    .create({ model: "node-up", messages: [{ role: "user", content: "one two three" }], stream: true, stream_options: { include_usage: true } })
    .withResponse();
  let text = "";
  let usage;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = chunk.usage;
  }
  const task = await storedTask(response);
  assert.equal(text, "echo: one two three");
  assert.equal(text, task.output);
  assert.equal(usage.completion_tokens, 4);
  assert.equal(chunks, 7); // role, four words, finish, usage
});

test("chat on the built-in simulator, streamed", async () => {
  const stream = await client().chat.completions.create({
    model: "demo-simulator", messages: [{ role: "user", content: "simulate" }], stream: true,
  });
  let text = "";
  let finish;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.match(text, /^\[simulated text-generation\]/);
  assert.equal(finish, "stop");
});

test("embeddings (the SDK asks for base64 and decodes it) and models.list", async () => {
  const r = await client().embeddings.create({ model: "node-up", input: ["alpha", "beta gamma"] });
  assert.equal(r.data.length, 2);
  r.data.forEach((d, i) => {
    const want = vector(["alpha", "beta gamma"][i]).map((x) => Math.fround(x));
    assert.deepEqual(Array.from(d.embedding), want);
  });
  const names = [];
  for await (const m of client().models.list()) names.push(m.id);
  for (const n of ["demo-simulator", "node-up", "node-parked"]) assert.ok(names.includes(n), `${n} in ${names}`);
});

const failsWith = async (call, cls, status) => {
  await assert.rejects(call, (err) => {
    assert.ok(err instanceof cls, `${err.constructor.name} (${err.status}: ${err.message}) is not a ${cls.name}`);
    assert.equal(err.status, status);
    assert.ok(err.error?.message, "OpenAI-shaped error body");
    return true;
  });
};

const chat = (c, model, content, opts) => c.chat.completions.create({ model, messages: [{ role: "user", content }] }, opts);

test("every error status surfaces as the SDK's own error class", async () => {
  await failsWith(() => client().chat.completions.create({ model: "node-up", messages: [{ role: "user", content: "x" }], temperature: 3 }), OpenAI.BadRequestError, 400);
  await failsWith(() => chat(client(), "node-up", "status:400"), OpenAI.BadRequestError, 400);
  await failsWith(() => chat(client("lls_not-a-key"), "node-up", "x"), OpenAI.AuthenticationError, 401);
  await failsWith(() => chat(client(keys.revoked), "node-up", "x"), OpenAI.AuthenticationError, 401);
  await failsWith(() => chat(client(keys.viewer), "node-up", "x"), OpenAI.PermissionDeniedError, 403);
  await failsWith(() => chat(client(), "no-such-model", "x"), OpenAI.NotFoundError, 404);
  await failsWith(() => chat(client(), "node-parked", "x", { headers: { "X-Queue-Timeout": "300ms" } }), OpenAI.APIError, 408);
  await failsWith(() => chat(client(), "node-up", "status:500"), OpenAI.InternalServerError, 500);
  await failsWith(() => chat(client(), "node-up", "status:503"), OpenAI.InternalServerError, 503);
});

test("backpressure: 429 with Retry-After, honoured by the SDK's own retries", async () => {
  // QUEUE_MAX_QUEUE_SIZE=20: fill the offline model's queue, the second
  // time on a count fresh from the database (the backlog count is cached
  // for 250 ms, and tasks that left pending since show only in a fresh one).
  for (const _ of [1, 2]) {
    for (let i = 0; i < 30; i++) {
      const r = await rest("POST", "/api/v1/tasks", { model_id: parkedID, type: "text-generation", input: "wait" });
      if (r.status === 429) break;
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await new Promise((ok) => setTimeout(ok, 300));
  }
  let calls = 0;
  const counting = (url, init) => {
    calls++;
    return fetch(url, init);
  };
  const started = Date.now();
  await failsWith(() => chat(client(keys.submitter, { maxRetries: 1, fetch: counting }), "node-parked", "x"), OpenAI.RateLimitError, 429);
  assert.equal(calls, 2, "one request and one retry");
  assert.ok(Date.now() - started >= 4_900, `retried after ${Date.now() - started} ms; Retry-After says 5 s`);
});
