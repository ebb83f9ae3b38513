// Reference-client test: the protocol's own client libraries subscribe to
// taskUpdated on a running llm-scheduler and must see PENDING, RUNNING,
// COMPLETED in order, then completion. LLMSCHED_URL points at the server
// (scripts/ci.d/40-graphql-clients.sh starts one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import subscriptionsTransportWs from 'subscriptions-transport-ws';

const { SubscriptionClient } = subscriptionsTransportWs;
const base = process.env.LLMSCHED_URL;
if (!base) throw new Error('set LLMSCHED_URL, e.g. http://127.0.0.1:8080');
const wsURL = base.replace(/^http/, 'ws') + '/graphql';

async function gql(query, variables) {
  const res = await fetch(base + '/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const taskUpdated = `subscription($id: ID!) { taskUpdated(id: $id) { id status output } }`;

// prepare registers an offline simulator model and a task on it: the task
// stays PENDING until the test switches the model online, so the first
// message is deterministic.
async function prepare(name) {
  const { createModel } = await gql(
    `mutation($in: CreateModelInput!) { createModel(input: $in) { id } }`,
    { in: { name: `${name}-${Date.now()}`, type: 'SIMULATOR', status: 'OFFLINE', maxWorkers: 1,
      config: { latency_ms: 100, tokens_per_second: 100, output_tokens: 5 } } });
  const { createTask } = await gql(
    `mutation($in: CreateTaskInput!) { createTask(input: $in) { id status } }`,
    { in: { modelID: createModel.id, type: 'TEXT_GENERATION', input: `hello from ${name}` } });
  assert.equal(createTask.status, 'PENDING');
  return { modelID: createModel.id, taskID: createTask.id };
}

const goOnline = (modelID) =>
  gql(`mutation($id: ID!) { setModelStatus(id: $id, status: ONLINE) { status } }`, { id: modelID });

// follow subscribes with subscribe(sink) and resolves with the statuses seen
// once the server completes the subscription.
function follow(subscribe, modelID) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`timed out; saw ${seen}`)), 30_000);
    subscribe({
      next: (msg) => {
        if (msg.errors) { clearTimeout(timer); reject(new Error(JSON.stringify(msg.errors))); return; }
        seen.push(msg.data.taskUpdated.status);
        if (seen.length === 1) goOnline(modelID).catch(reject);
      },
      error: (err) => { clearTimeout(timer); reject(err instanceof Error ? err : new Error(JSON.stringify(err))); },
      complete: () => { clearTimeout(timer); resolve(seen); },
    });
  });
}

test('graphql-ws (graphql-transport-ws) follows a task to completion', async () => {
  const { modelID, taskID } = await prepare('graphql-ws');
  const client = createClient({ url: wsURL, webSocketImpl: WebSocket, retryAttempts: 0 });
  try {
    const seen = await follow(
      (sink) => client.subscribe({ query: taskUpdated, variables: { id: taskID } }, sink), modelID);
    assert.deepEqual(seen, ['PENDING', 'RUNNING', 'COMPLETED']);
  } finally {
    await client.dispose();
  }
});

test('subscriptions-transport-ws (legacy graphql-ws) follows a task to completion', async () => {
  const { modelID, taskID } = await prepare('legacy');
  const client = new SubscriptionClient(wsURL, { reconnect: false }, WebSocket);
  try {
    const seen = await follow(
      (sink) => client.request({ query: taskUpdated, variables: { id: taskID } }).subscribe(sink), modelID);
    assert.deepEqual(seen, ['PENDING', 'RUNNING', 'COMPLETED']);
  } finally {
    client.close();
  }
});
