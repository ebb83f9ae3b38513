// End-to-end test of the dashboard in a real headless Chromium (Debian's
// `chromium`, driven by playwright-core; no browser download) against the
// running llm-scheduler binary on the embedded default (SQLite + in-process
// Redis).
//
//   node e2e/run.mjs
//
// Environment:
//   LLMSCHED_BIN    the binary (default ../llm-scheduler, as `go build -o llm-scheduler .` at the root makes it)
//   E2E_PORT        port for the server (default 18931)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   SCREENSHOT_DIR  where screenshots go (default ../artifacts/screenshots)
//   E2E_ONLY        run only the steps whose name matches this regular expression (while working on one)
//
// It prints one line per step and closes with "N passed, N failed".

import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, rmSync, createWriteStream, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
const BIN = resolve(process.env.LLMSCHED_BIN || join(here, "../../llm-scheduler"));
const PORT = Number(process.env.E2E_PORT || 18931);
const BASE = `http://127.0.0.1:${PORT}`;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = resolve(process.env.SCREENSHOT_DIR || join(here, "../../artifacts/screenshots"));
const workdir = mkdtempSync(join(tmpdir(), "llmsched-e2e-"));
mkdirSync(SHOTS, { recursive: true });

const WEBHOOK_SECRET = "e2e-webhook-secret-0123456789";
let server = null;
let serverLog = null;

function startServer() {
  serverLog = createWriteStream(join(workdir, "server.log"), { flags: "a" });
  // Webhooks: signed with a configured secret, and allowed to call the
  // test's receiver on loopback.
  const env = { ...process.env, SERVER_PORT: String(PORT), WEBHOOKS_SECRET: WEBHOOK_SECRET, WEBHOOKS_ALLOW_PRIVATE: "true" };
  server = spawn(BIN, [], { cwd: workdir, env, stdio: ["ignore", "pipe", "pipe"] });
  server.on("error", (e) => {
    console.log(`FAIL cannot start ${BIN}: ${e.message} (build it with \`go build -o llm-scheduler .\` at the repository root, or set LLMSCHED_BIN)`);
    process.exit(1);
  });
  server.stdout.pipe(serverLog);
  server.stderr.pipe(serverLog);
  return waitFor(async () => (await fetch(`${BASE}/api/v1/system/health`).catch(() => null))?.ok, 60_000, "server health");
}

async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  await Promise.race([exited, sleep(15_000).then(() => server.kill("SIGKILL"))]);
  await exited;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, timeout, what) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(100);
  }
}

async function rest(method, path, body) {
  const res = await fetch(BASE + path, { method, headers: { "Content-Type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json.data;
}

/**
 * startCountingServer starts an OpenAI-compatible server on loopback that
 * reports its token usage (11 in, 3 out), streamed or not, so a task on it
 * has counts the provider reported rather than estimated.
 */
function startCountingServer() {
  const usage = { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 };
  const content = "counted by the server";
  const srv = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const r = JSON.parse(body || "{}");
      if (r.stream) {
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        const chunk = (o) => res.write(`data: ${JSON.stringify({ id: "1", object: "chat.completion.chunk", created: 1, model: "m", ...o })}\n\n`);
        chunk({ choices: [{ index: 0, delta: { role: "assistant", content } }] });
        chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] });
        chunk({ choices: [], usage });
        res.end("data: [DONE]\n\n");
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ id: "1", object: "chat.completion", created: 1, model: "m", choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }], usage }));
    });
  });
  return new Promise((ok) => srv.listen(0, "127.0.0.1", () => ok(srv)));
}

// ---- page helpers ---------------------------------------------------------

/**
 * selectByText picks the first option whose text contains text, waiting up to
 * 10 s for it: a select's options may come from a query still in flight
 * right after a navigation (the New task form's model list).
 */
async function selectByText(select, text) {
  const value = await waitFor(
    () => select.evaluate((el, t) => [...el.options].find((o) => o.text.includes(t))?.value ?? null, text),
    10_000,
    `an option containing ${JSON.stringify(text)}`,
  );
  await select.selectOption(value);
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** createModelViaForm registers a simulator model with the New model form. */
async function createModelViaForm(page, name, maxWorkers, cfg) {
  await page.goto(`${BASE}/models/new`);
  const form = page.getByRole("form", { name: "New model" });
  await form.getByLabel("Name").fill(name);
  await selectByText(form.getByLabel("Type"), "simulator");
  await form.getByLabel("Max workers").fill(String(maxWorkers));
  for (const [label, value] of Object.entries(cfg)) {
    const input = form.getByLabel(label);
    if ((await input.evaluate((el) => el.tagName)) === "SELECT") await input.selectOption(value);
    else await input.fill(value);
  }
  await form.getByRole("button", { name: "Create model" }).click();
  await page.waitForURL(`${BASE}/models`);
  await page.locator(`[data-model="${name}"]`).waitFor();
}

/** submitTask fills the New task form on the Tasks page and returns the new task's id. */
async function submitTask(page, { model, type = "text generation", input, priority = "medium", extra = {} }) {
  const form = page.locator("#create-task");
  if (!(await form.isVisible())) await page.getByRole("button", { name: "New task" }).click();
  const notice = page.locator("p.notice a");
  const before = (await notice.count()) ? await notice.textContent() : "";
  await selectByText(form.getByLabel("Model", { exact: true }), model);
  await selectByText(form.getByLabel("Type", { exact: true }), type);
  await selectByText(form.getByLabel("Priority", { exact: true }), priority);
  for (const [label, value] of Object.entries(extra)) await form.getByLabel(label).fill(value);
  await form.getByLabel(/^(Input|Text to)/).fill(input);
  await form.getByRole("button", { name: "Submit task" }).click();
  const link = page.locator("p.notice a");
  await waitFor(async () => {
    const t = await link.textContent().catch(() => null);
    return t && t !== before;
  }, 10_000, "the created-task notice");
  return (await link.textContent()).replace("#", "");
}

function row(page, id) {
  return page.locator(`tr[data-task-id="${id}"]`);
}

async function detailStatus(page) {
  return page.locator("h1 [data-status]").getAttribute("data-status");
}

// ---- the run --------------------------------------------------------------

const results = [];
let page;
let ctx;
const pageErrors = [];

const only = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;

async function step(name, fn) {
  if (only && !only.test(name)) return;
  const start = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e instanceof Error ? e.stack : e}`);
    await shot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, "-")}`).catch(() => {});
  }
}

const ids = {};

try {
  await startServer();
  ctx = await chromium.launchPersistentContext(join(workdir, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (e) => pageErrors.push(e.message));

  await step("keyboard: skip link and navigation reach every page", async () => {
    await page.goto(`${BASE}/`);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press("Tab");
      if ((await page.evaluate(() => document.activeElement?.textContent)) === "Tasks") break;
    }
    await page.keyboard.press("Enter");
    await page.waitForURL(`${BASE}/tasks`);
    // Exact: while the route changes, the Overview's "Tasks per day" may still be on the page.
    await page.getByRole("heading", { name: "Tasks", exact: true, level: 1 }).waitFor();
  });

  await step("create a model with the form", async () => {
    await createModelViaForm(page, "e2e-sim", 1, { "Latency (ms)": "300", "Tokens per second": "10", "Output tokens": "25" });
    const card = page.locator('[data-model="e2e-sim"]');
    assert.match(await card.textContent(), /built-in simulator/);
    assert.equal(await card.getByRole("switch").getAttribute("aria-checked"), "true");
    await createModelViaForm(page, "e2e-slow", 1, { "Latency (ms)": "100", "Tokens per second": "2", "Output tokens": "400" });
    await createModelViaForm(page, "e2e-flaky", 2, { "Latency (ms)": "50", "Tokens per second": "0", "Output tokens": "5", "Fail first N attempts": "1", "Failure kind": "permanent" });
    // The form checks per type before sending: a bad number is refused in place.
    await page.goto(`${BASE}/models/new`);
    const form = page.getByRole("form", { name: "New model" });
    await form.getByLabel("Name").fill("bad");
    await form.getByLabel("Failure rate").fill("2");
    await form.getByRole("button", { name: "Create model" }).click();
    await form.getByText("Failure rate (0–1) must be at most 1").waitFor();
    await selectByText(form.getByLabel("Type"), "openai");
    await form.getByLabel("API key").waitFor();
    await form.getByLabel("Base URL").waitFor();
    await shot(page, "model-new-openai");
  });

  await step("submit tasks and watch pending -> running -> completed without reloading", async () => {
    await page.goto(`${BASE}/tasks`);
    await page.evaluate(() => {
      window.__noReload = true;
      window.__log = {};
      const record = () => {
        for (const tr of document.querySelectorAll("tr[data-task-id]")) {
          const id = tr.getAttribute("data-task-id");
          const s = tr.getAttribute("data-status");
          const l = (window.__log[id] ??= []);
          if (l.at(-1) !== s) l.push(s);
        }
      };
      new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
      record();
    });
    ids.a = await submitTask(page, { model: "e2e-sim", input: "first task from the browser", priority: "high" });
    ids.b = await submitTask(page, { model: "e2e-sim", type: "translation", input: "bonjour tout le monde", extra: { "Target language": "English" } });
    // The model runs one task at a time: the second waits, and says why.
    await row(page, ids.b).and(page.locator('[data-status="PENDING"]')).waitFor();
    const why = await row(page, ids.b).getByTestId("pending-reason").textContent();
    assert.match(why, /worker|waiting|dispatch|line/i, `pending reason shown: ${why}`);
    await shot(page, "tasks-live");
    await row(page, ids.b).and(page.locator('[data-status="COMPLETED"]')).waitFor({ timeout: 30_000 });
    const log = await page.evaluate(() => window.__log);
    assert.deepEqual(log[ids.b], ["PENDING", "RUNNING", "COMPLETED"], `status history of task ${ids.b}: ${JSON.stringify(log[ids.b])}`);
    assert.equal(log[ids.a]?.at(-1), "COMPLETED");
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was reloaded");
  });

  await step("see output stream in the detail view while the task runs", async () => {
    ids.c = await submitTask(page, { model: "e2e-sim", input: "stream me please", priority: "low" });
    await page.locator("p.notice a").click();
    await page.waitForURL(`${BASE}/tasks/${ids.c}`);
    const samples = [];
    await waitFor(async () => {
      const status = await detailStatus(page);
      const text = (await page.getByTestId("task-output").textContent().catch(() => "")) ?? "";
      samples.push([status, text.length]);
      return status === "COMPLETED";
    }, 30_000, "task to complete");
    const runningLengths = [...new Set(samples.filter(([s, n]) => s === "RUNNING" && n > 0).map(([, n]) => n))];
    assert.ok(runningLengths.length >= 2, `output grew while RUNNING: ${JSON.stringify(samples)}`);
    assert.ok(runningLengths.at(-1) > runningLengths[0]);
    assert.match(await page.getByTestId("task-output").textContent(), /simulated text-generation/);
    await page.locator('[data-attempt="1"]').waitFor();
    assert.match(await page.locator(".timeline").textContent(), /Attempt 1 succeeded after/);
    await shot(page, "task-detail");
  });

  await step("token counts say when they are estimated, and only then", async () => {
    // The simulator sends no usage: its counts are estimated.
    const sim = await rest("POST", "/api/v1/models", { name: "e2e-estimates", type: "simulator", max_workers: 1, config: { latency_ms: 0, output_tokens: 5 } });
    const guessed = await rest("POST", "/api/v1/tasks", { model_id: sim.id, type: "text-generation", input: "guess my tokens" });
    await page.goto(`${BASE}/tasks/${guessed.id}`);
    await waitFor(async () => (await detailStatus(page)) === "COMPLETED", 15_000, "COMPLETED");
    const tokens = page.locator("div:has(> dt:text-is('Tokens')) > dd");
    assert.match(await tokens.textContent(), /\(estimated\)/, "estimated counts are labelled");
    assert.match(await page.locator('[data-attempt="1"]').textContent(), /\(estimated\)/, "the attempt's estimated counts are labelled");
    // A server that reports its usage: the counts are not labelled.
    const counting = await startCountingServer();
    try {
      const model = await rest("POST", "/api/v1/models", { name: "e2e-counted", type: "openai", max_workers: 1, config: { base_url: `http://127.0.0.1:${counting.address().port}/v1`, model: "m" } });
      const task = await rest("POST", "/api/v1/tasks", { model_id: model.id, type: "text-generation", input: "count my tokens" });
      await page.goto(`${BASE}/tasks/${task.id}`);
      await waitFor(async () => (await detailStatus(page)) === "COMPLETED", 15_000, "COMPLETED");
      const stored = await rest("GET", `/api/v1/tasks/${task.id}`);
      assert.equal(stored.token_source, "reported", `token_source of the task on the counting server: ${JSON.stringify(stored)}`);
      await page.locator('[data-attempt="1"]').waitFor();
      const text = await tokens.textContent();
      assert.match(text, /11 in · 3 out/, `reported counts shown: ${text}`);
      assert.doesNotMatch(text, /estimated/, `reported counts are not labelled estimated: ${text}`);
      assert.equal(await page.getByTestId("token-source").count(), 0);
      assert.doesNotMatch(await page.locator('[data-attempt="1"]').textContent(), /estimated/);
    } finally {
      counting.close();
    }
  });

  await step("a task's webhook deliveries show on its page, each try with its answer", async () => {
    // A receiver that answers the first try 500 and later ones 200, and
    // checks the signature as docs/webhooks.md says.
    const tries = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        tries.push({ signature: req.headers["x-llmsched-signature"] || "", body });
        res.writeHead(tries.length === 1 ? 500 : 200).end();
      });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const sim = await rest("POST", "/api/v1/models", { name: "e2e-webhooks", type: "simulator", max_workers: 1, config: { latency_ms: 0, output_tokens: 3 } });
      const url = `http://127.0.0.1:${receiver.address().port}/hook`;
      const task = await rest("POST", "/api/v1/tasks", { model_id: sim.id, type: "text-generation", input: "call me back", callback_url: url });
      await page.goto(`${BASE}/tasks/${task.id}`);
      await waitFor(async () => (await detailStatus(page)) === "COMPLETED", 15_000, "COMPLETED");
      const section = page.locator("section:has(#webhooks-h)");
      assert.match(await section.textContent(), new RegExp(`Callback URL: ${url.replace(/[.]/g, "\\.")}`));
      // The first try fails (500); the retry, after its backoff, succeeds.
      await waitFor(async () => {
        await page.reload();
        const rows = page.locator("[data-testid=webhook-deliveries] tbody tr");
        return (await rows.count()) === 2 && /delivered/.test(await rows.nth(0).textContent());
      }, 90_000, "the delivery shown as delivered after a 500 and a retry");
      const rows = page.locator("[data-testid=webhook-deliveries] tbody tr");
      assert.match(await rows.nth(0).textContent(), /task\.completed/);
      assert.match(await rows.nth(0).textContent(), /500/);
      assert.match(await rows.nth(1).textContent(), /200/);
      assert.equal(tries.length, 2, `the receiver got ${tries.length} tries`);
      // Both tries carry a valid signature over "t.body".
      const { createHmac, timingSafeEqual } = await import("node:crypto");
      for (const t of tries) {
        const parts = Object.fromEntries(t.signature.split(",").map((kv) => kv.split("=")));
        const want = createHmac("sha256", WEBHOOK_SECRET).update(`${parts.t}.${t.body}`).digest("hex");
        assert.ok(parts.v1 && timingSafeEqual(Buffer.from(parts.v1), Buffer.from(want)), `signature ${t.signature}`);
        const sent = JSON.parse(t.body);
        assert.equal(sent.task.status, "completed", `payload: ${t.body}`);
        assert.equal(sent.event, "task.completed", `payload: ${t.body}`);
      }
      await shot(page, "task-webhooks");
    } finally {
      receiver.close();
    }
  });

  await step("cancel a running task", async () => {
    await page.goto(`${BASE}/tasks`);
    ids.d = await submitTask(page, { model: "e2e-slow", input: "a long answer that will be cancelled" });
    await page.goto(`${BASE}/tasks/${ids.d}`);
    await waitFor(async () => (await detailStatus(page)) === "RUNNING", 15_000, "RUNNING");
    await page.getByTestId("task-output").waitFor();
    await page.getByRole("button", { name: `Cancel task ${ids.d}` }).click();
    await waitFor(async () => (await detailStatus(page)) === "CANCELLED", 15_000, "CANCELLED");
    await page.locator('[data-attempt="1"] [data-status="CANCELLED"]').waitFor();
    await page.getByRole("button", { name: `Retry task ${ids.d}` }).waitFor();
  });

  await step("retry a failed task", async () => {
    await page.goto(`${BASE}/tasks`);
    ids.f = await submitTask(page, { model: "e2e-flaky", input: "fails once" });
    await page.goto(`${BASE}/tasks/${ids.f}`);
    await waitFor(async () => (await detailStatus(page)) === "FAILED", 15_000, "FAILED");
    assert.match(await page.locator(".callout-bad").textContent(), /simulated failure/);
    await page.getByRole("button", { name: `Retry task ${ids.f}` }).click();
    await waitFor(async () => (await detailStatus(page)) === "COMPLETED", 20_000, "COMPLETED after retry");
    await page.locator('[data-attempt="2"] [data-status="SUCCEEDED"]').waitFor();
    assert.match(await page.locator('[data-attempt="1"]').textContent(), /simulated failure on attempt 1/);
  });

  await step("schedule a task a few seconds ahead: it waits as Scheduled, shows its time, then runs", async () => {
    await page.goto(`${BASE}/tasks`);
    await page.getByRole("button", { name: "New task" }).click();
    await page.locator("#create-task summary").click();
    ids.s = await submitTask(page, { model: "e2e-sim", input: "later, please", extra: { "Run after (seconds)": "3" } });
    await page.goto(`${BASE}/tasks/${ids.s}`);
    const callout = page.getByTestId("pending-callout");
    await callout.waitFor();
    assert.match(await callout.textContent(), /Scheduled.*scheduled to run at/s);
    await page.getByTestId("run-at").waitFor();
    await waitFor(async () => (await detailStatus(page)) === "COMPLETED", 20_000, "COMPLETED after its run_at");
  });

  await step("toggle a model offline and see its new task wait with the reason", async () => {
    await page.goto(`${BASE}/models`);
    const sw = page.locator('[data-model="e2e-sim"]').getByRole("switch");
    await sw.click();
    await waitFor(async () => (await sw.getAttribute("aria-checked")) === "false", 10_000, "switch off");
    await page.locator('[data-model="e2e-sim"] [data-status="OFFLINE"]').waitFor();
    await shot(page, "models");
    await page.goto(`${BASE}/tasks`);
    ids.g = await submitTask(page, { model: "e2e-sim", input: "waits for the model" });
    await row(page, ids.g).and(page.locator('[data-status="PENDING"]')).waitFor();
    await waitFor(async () => /Model offline/.test(await row(page, ids.g).getByTestId("pending-reason").textContent()), 10_000, "reason in the table");
    await page.goto(`${BASE}/tasks/${ids.g}`);
    const callout = page.getByTestId("pending-callout");
    await callout.waitFor();
    assert.match(await callout.textContent(), /Model offline.*offline/s);
    await shot(page, "task-pending-offline");
    // Back online, the waiting task runs.
    await page.goto(`${BASE}/models`);
    await page.locator('[data-model="e2e-sim"]').getByRole("switch").click();
    await page.goto(`${BASE}/tasks/${ids.g}`);
    await waitFor(async () => (await detailStatus(page)) === "COMPLETED", 30_000, "COMPLETED once online");
  });

  await step("API key weights and budgets, callers' live shares, and cost by model and caller", async () => {
    // API key settings on the System page: the form checks before sending.
    await page.goto(`${BASE}/system`);
    const keys = page.locator("section:has(#keys-h)");
    const create = page.getByRole("form", { name: "New API key" });
    await create.waitFor();
    await create.getByLabel("Key name").fill("e2e-team");
    await create.getByLabel("Weight").fill("0");
    await create.getByLabel("Tokens per day").fill("1000");
    await create.getByRole("button", { name: "Create key" }).click();
    await create.getByText("Weight must be a whole number from 1 to 1000").waitFor();
    await create.getByLabel("Weight").fill("3");
    await create.getByRole("button", { name: "Create key" }).click();
    const secret = await page.getByTestId("new-key-secret").textContent();
    assert.ok(secret && secret.length >= 20, `the new key is shown once: ${secret}`);
    const teamRow = page.locator('tr[data-key="e2e-team"]');
    await teamRow.and(page.locator('[data-weight="3"]')).waitFor();
    assert.match(await teamRow.getByTestId("key-day").textContent(), /0 \/ 1,000/);
    // Edit: weight 5, the day cap removed.
    await page.getByRole("button", { name: "Edit key e2e-team" }).click();
    const edit = page.getByRole("form", { name: "Settings of key e2e-team" });
    await edit.getByLabel("Weight").fill("5");
    await edit.getByLabel("Tokens per day").fill("");
    await edit.getByLabel("Tokens per month").fill("250000");
    await edit.getByRole("button", { name: "Save" }).click();
    await teamRow.and(page.locator('[data-weight="5"]')).waitFor();
    assert.match(await teamRow.getByTestId("key-day").textContent(), /no cap/);
    const stored = (await rest("GET", "/api/v1/apikeys")).find((k) => k.name === "e2e-team");
    assert.equal(stored.weight, 5);
    assert.equal(stored.tokens_per_day, null);
    assert.equal(stored.tokens_per_month, 250000);

    // Token caps per model: added, changed and removed in the same form,
    // each save checked through the REST API.
    const capA = await rest("POST", "/api/v1/models", { name: "e2e-cap-a", type: "simulator", max_workers: 1, config: { latency_ms: 0 } });
    const capB = await rest("POST", "/api/v1/models", { name: "e2e-cap-b", type: "simulator", max_workers: 1, config: { latency_ms: 0 } });
    const storedCaps = async () => (await rest("GET", "/api/v1/apikeys")).find((k) => k.name === "e2e-team").model_budgets;
    await page.reload();
    await page.getByRole("button", { name: "Edit key e2e-team" }).click();
    const caps = edit.getByTestId("model-caps");
    await caps.getByRole("button", { name: "Add a model cap" }).click();
    const cap1 = caps.getByRole("group", { name: "Model cap 1" });
    await cap1.getByLabel("Model", { exact: true }).selectOption({ label: "e2e-cap-a" });
    await edit.getByRole("button", { name: "Save" }).click();
    await cap1.getByText("A model cap needs tokens per day or per month").waitFor();
    await cap1.getByLabel("Model tokens per day").fill("5000");
    await caps.getByRole("button", { name: "Add a model cap" }).click();
    const cap2 = caps.getByRole("group", { name: "Model cap 2" });
    await cap2.getByLabel("Model", { exact: true }).selectOption({ label: "e2e-cap-b" });
    await cap2.getByLabel("Model tokens per month").fill("90000");
    await edit.getByRole("button", { name: "Save" }).click();
    await teamRow.getByTestId("key-model-caps").getByText("e2e-cap-a: 5,000/day; e2e-cap-b: 90,000/month").waitFor();
    assert.deepEqual(await storedCaps(), [
      { model_id: capA.id, tokens_per_day: 5000 },
      { model_id: capB.id, tokens_per_month: 90000 },
    ]);
    await shot(page, "system-api-key-model-caps");
    // The cap on A removed, B's given a day cap too.
    await page.getByRole("button", { name: "Edit key e2e-team" }).click();
    await caps.getByRole("button", { name: "Remove the cap on e2e-cap-a" }).click();
    await caps.getByRole("group", { name: "Model cap 1" }).getByLabel("Model tokens per day").fill("700");
    await edit.getByRole("button", { name: "Save" }).click();
    await teamRow.getByTestId("key-model-caps").getByText("e2e-cap-b: 700/day, 90,000/month", { exact: true }).waitFor();
    assert.deepEqual(await storedCaps(), [{ model_id: capB.id, tokens_per_day: 700, tokens_per_month: 90000 }]);
    // The last one removed: the key has no model caps left, its other settings stay.
    await page.getByRole("button", { name: "Edit key e2e-team" }).click();
    await caps.getByRole("button", { name: "Remove the cap on e2e-cap-b" }).click();
    await edit.getByRole("button", { name: "Save" }).click();
    await teamRow.getByTestId("key-model-caps").getByText("—", { exact: true }).waitFor();
    const after = (await rest("GET", "/api/v1/apikeys")).find((k) => k.name === "e2e-team");
    assert.deepEqual(after.model_budgets, []);
    assert.equal(after.weight, 5);
    assert.equal(after.tokens_per_month, 250000);
    await keys.first().scrollIntoViewIfNeeded();
    await shot(page, "system-api-keys");

    // Callers: tasks of two callers wait on an offline model; the page
    // shows them live, then empties once the model runs them.
    const model = await rest("POST", "/api/v1/models", {
      name: "e2e-priced", type: "simulator", max_workers: 1, status: "offline", input_price: 2, output_price: 4,
      config: { latency_ms: 20, output_tokens: 30 },
    });
    await page.goto(`${BASE}/callers`);
    await page.getByRole("heading", { name: "Callers", level: 1 }).waitFor();
    await page.evaluate(() => (window.__noReload = true));
    for (const [caller, n] of [["alice", 3], ["bob", 2]]) {
      for (let i = 0; i < n; i++) await rest("POST", "/api/v1/tasks", { model_id: model.id, type: "text-generation", input: `costs something ${caller} ${i}`, caller });
    }
    await page.locator('tr[data-caller="alice"][data-queued="3"]').waitFor();
    await page.locator('tr[data-caller="bob"][data-queued="2"]').waitFor();
    assert.equal(await page.locator('tr[data-caller="bob"]').getByTestId("fair-share").textContent(), "50%");
    await shot(page, "callers");
    await rest("PUT", `/api/v1/models/${model.id}/status`, { status: "online" });
    await page.locator('tr[data-caller="alice"]').waitFor({ state: "detached", timeout: 30_000 });
    await page.locator('tr[data-caller="bob"]').waitFor({ state: "detached", timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was reloaded");

    // Cost: the priced model and both callers, as the REST report says;
    // a new caller's task shows up without a reload.
    await page.goto(`${BASE}/cost`);
    await page.evaluate(() => (window.__noReload = true));
    const report = await rest("GET", "/api/v1/stats/cost?days=7");
    const restCost = (lines, name) => lines.find((l) => l.name === name)?.cost;
    for (const [table, name, lines] of [["cost-by-model", "e2e-priced", report.by_model], ["cost-by-caller", "alice", report.by_caller], ["cost-by-caller", "bob", report.by_caller]]) {
      const want = restCost(lines, name);
      assert.ok(want > 0, `REST cost of ${name}: ${want}`);
      const cell = page.getByTestId(table).locator(`tr[data-name="${name}"]`);
      await cell.waitFor();
      assert.equal(Number(await cell.getAttribute("data-cost")), want, `${name} in ${table}`);
    }
    await rest("POST", "/api/v1/tasks", { model_id: model.id, type: "text-generation", input: "a third caller", caller: "carol" });
    await page.getByTestId("cost-by-caller").locator('tr[data-name="carol"]').waitFor({ timeout: 20_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was reloaded");
    await shot(page, "cost");
  });

  await step("screenshots of every page, laptop and phone", async () => {
    await page.goto(`${BASE}/`);
    await page.getByTestId("stat-total-tasks").waitFor();
    // Some traffic while the Overview is open fills its live chart.
    const models = await rest("GET", "/api/v1/models");
    const simIDs = models.filter((m) => m.name === "e2e-sim" || m.name === "demo-simulator" || m.name === "e2e-flaky").map((m) => m.id);
    for (let i = 0; i < 9; i++) {
      await rest("POST", "/api/v1/tasks", { model_id: simIDs[i % simIDs.length], type: "text-generation", input: `overview traffic ${i}`, priority: (i % 3) + 1, max_retries: 0 });
    }
    await waitFor(async () => Number((await page.getByTestId("stat-total-tasks").textContent()).replace(/\D/g, "")) >= 15, 10_000, "total tasks");
    await waitFor(async () => Number((await page.getByTestId("stat-pending").textContent()).replace(/\D/g, "")) + Number((await page.getByTestId("stat-running").textContent()).replace(/\D/g, "")) === 0, 30_000, "the traffic to finish");
    await page.locator('[data-testid="live-chart"] .recharts-bar-rectangle').first().waitFor();
    await page.locator(".recharts-bar-rectangle").first().waitFor();
    await sleep(3500); // the per-day chart refetches within 3 s of the last change
    await shot(page, "overview");
    await page.goto(`${BASE}/tasks`);
    await page.locator("tr[data-task-id]").first().waitFor();
    await shot(page, "tasks");
    await page.getByRole("button", { name: "New task" }).click();
    await selectByText(page.locator("#create-task").getByLabel("Type", { exact: true }), "translation");
    await shot(page, "task-new-translation");
    await page.goto(`${BASE}/models`);
    await page.locator('[data-model="e2e-sim"]').waitFor();
    await page.locator('[data-model="e2e-sim"]').getByRole("link", { name: "Edit" }).click();
    await page.getByRole("form", { name: "Edit model" }).waitFor();
    assert.equal(await page.getByLabel("Latency (ms)").inputValue(), "300");
    await shot(page, "model-edit");
    await page.goto(`${BASE}/system`);
    await page.getByTestId("dep-database").waitFor();
    assert.match(await page.getByTestId("dep-database").textContent(), /OK/);
    assert.match(await page.getByTestId("dep-redis").textContent(), /OK/);
    await page.getByText("queue.max_queue_size").waitFor();
    await shot(page, "system");
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [path, name] of [["/", "overview"], ["/tasks", "tasks"], ["/models", "models"], [`/tasks/${ids.c}`, "task-detail"], ["/callers", "callers"], ["/cost", "cost"]]) {
      await page.goto(BASE + path);
      await page.locator("main h1").waitFor();
      await sleep(500);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 1, `${path} scrolls sideways on a phone by ${overflow}px`);
      await shot(page, `phone-${name}`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step("asynqmon at /monitoring shows the scheduler's queues", async () => {
    await page.goto(`${BASE}/monitoring/`);
    await page.getByText("medium").first().waitFor({ timeout: 20_000 });
    const queues = await (await fetch(`${BASE}/monitoring/api/queues`)).json();
    const names = queues.queues.map((q) => q.queue).sort();
    for (const q of ["high", "low", "medium"]) assert.ok(names.includes(q), `queues ${names}`);
    await shot(page, "monitoring");
  });

  await step("API down shows a banner; the page recovers by itself", async () => {
    await page.goto(`${BASE}/`);
    await page.getByTestId("stat-total-tasks").waitFor();
    await page.evaluate(() => (window.__noReload = true));
    await stopServer();
    await page.getByTestId("api-down").waitFor({ timeout: 20_000 });
    await shot(page, "api-down");
    await startServer();
    await page.getByTestId("api-down").waitFor({ state: "detached", timeout: 30_000 });
    // Live again: a task submitted now shows in the totals without a reload.
    const total = async () => Number((await page.getByTestId("stat-total-tasks").textContent()).replace(/\D/g, ""));
    const before = await total();
    const models = await rest("GET", "/api/v1/models");
    const sim = models.find((m) => m.name === "e2e-sim");
    await rest("POST", "/api/v1/tasks", { model_id: sim.id, type: "text-generation", input: "after the outage" });
    await waitFor(async () => (await total()) === before + 1, 15_000, "totals to update live");
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was reloaded");
  });

  await step("no uncaught errors in the page", async () => {
    assert.deepEqual(pageErrors, []);
  });
} catch (e) {
  results.push({ name: "setup", ok: false });
  console.log(`FAIL setup: ${e instanceof Error ? e.stack : e}`);
} finally {
  await ctx?.close().catch(() => {});
  await stopServer();
  const failed = results.filter((r) => !r.ok).length;
  if (failed) {
    try {
      console.log(`--- server log (${workdir}/server.log), last lines:`);
      console.log(readFileSync(join(workdir, "server.log"), "utf8").split("\n").slice(-40).join("\n"));
    } catch {
      /* no log */
    }
  } else {
    rmSync(workdir, { recursive: true, force: true });
  }
  console.log(`screenshots: ${SHOTS}`);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
