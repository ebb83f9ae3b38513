import { useEffect, useReducer, useState } from "react";
import { Link, useParams } from "react-router";
import { useQuery, useSubscription } from "urql";
import { graphql } from "../../gql";
import type { TaskDetailFieldsFragment } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useEvents } from "../../api/useEvents";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { ErrorState, Loading, Empty } from "../../components/states";
import { StatusBadge } from "../../components/StatusBadge";
import { durationBetween, enumLabel, formatDateTime, formatDuration, formatNumber, priorityLabel } from "../../lib/format";
import { applyOutputChunk, emptyOutput, type OutputChunkLike, type OutputState } from "../../lib/output";
import { ordinal, pendingReasonLabel } from "../../lib/pending";
import { buildTimeline } from "../../lib/timeline";
import { isTerminal } from "../../lib/taskRows";
import { TaskActions } from "./TaskActions";
import { idNumber } from "../../lib/ids";

graphql(`
  fragment TaskDetailFields on Task {
    id
    type
    priority
    status
    input
    params
    output
    embedding
    error
    attempts
    maxRetries
    timeoutSeconds
    promptTokens
    completionTokens
    totalTokens
    tokenSource
    pendingReason
    pendingDetail
    queuePosition
    createdAt
    updatedAt
    startedAt
    finishedAt
    nextAttemptAt
    runAt
    model {
      id
      name
      type
      status
    }
    attemptHistory {
      id
      number
      status
      error
      errorKind
      output
      worker
      promptTokens
      completionTokens
      tokenSource
      finishReason
      startedAt
      finishedAt
    }
    callbackURL
    webhookDeliveries {
      id
      event
      status
      attempts
      nextAttemptAt
      lastStatusCode
      lastError
      deliveredAt
      attemptHistory {
        id
        number
        statusCode
        error
        durationMs
        startedAt
      }
    }
  }
`);

const taskQuery = graphql(`
  query TaskDetail($id: ID!) {
    task(id: $id) {
      ...TaskDetailFields
    }
  }
`);

const taskLive = graphql(`
  subscription TaskDetailLive($id: ID!) {
    taskUpdated(id: $id) {
      ...TaskDetailFields
    }
  }
`);

const outputLive = graphql(`
  subscription TaskOutputLive($id: ID!) {
    taskOutput(id: $id) {
      attempt
      seq
      text
      done
    }
  }
`);

type OutputAction = { type: "chunk"; chunk: OutputChunkLike } | { type: "reset" };

function outputReducer(s: OutputState, a: OutputAction): OutputState {
  return a.type === "reset" ? emptyOutput : applyOutputChunk(s, a.chunk);
}

export function TaskDetailPage() {
  // The URL names the task by number (/tasks/3); an opaque id works too.
  const { id: param = "" } = useParams();
  const id = idNumber(param);
  const [q, refetch] = useQuery({ query: taskQuery, variables: { id } });
  const [live, resubscribe] = useSubscription({ query: taskLive, variables: { id } });
  const [out, dispatch] = useReducer(outputReducer, emptyOutput);
  const [outputKey, setOutputKey] = useState(0);

  // The freshest of the query and the stream; on a tie, the one that
  // arrived last.
  const [task, setTask] = useState<TaskDetailFieldsFragment | null>(null);
  useEffect(() => setTask(null), [id]);
  useEffect(() => {
    const t = q.data?.task;
    if (t) setTask((cur) => newer(t, cur));
  }, [q.data]);
  useEffect(() => {
    const t = live.data?.taskUpdated;
    if (t) setTask((cur) => newer(t, cur));
  }, [live.data]);
  const running = task != null && !isTerminal(task.status);

  // The stream ends with the terminal state, which can come before the
  // worker has closed its attempt: read the task again until it has.
  const attemptOpen = task != null && !running && (task.attemptHistory ?? []).some((a) => a.status === "RUNNING");
  const [settleTries, setSettleTries] = useState(0);
  useEffect(() => {
    if (!attemptOpen || settleTries >= 10) return;
    const t = setTimeout(() => {
      setSettleTries((n) => n + 1);
      refetch({ requestPolicy: "network-only" });
    }, 1000);
    return () => clearTimeout(t);
  }, [attemptOpen, settleTries, refetch, task]);


  // A retried task streams again: resubscribe when it leaves a terminal state.
  const [wasTerminal, setWasTerminal] = useState<boolean | null>(null);
  useEffect(() => {
    if (!task) return;
    const term = isTerminal(task.status);
    if (wasTerminal === true && !term) {
      resubscribe({ requestPolicy: "network-only" });
      dispatch({ type: "reset" });
      setOutputKey((k) => k + 1);
    }
    setWasTerminal(term);
  }, [task?.status]);

  useRefetchOnReconnect(() => {
    refetch({ requestPolicy: "network-only" });
    resubscribe({ requestPolicy: "network-only" });
  });

  if (!task || idNumber(task.id) !== id) {
    if (q.fetching || (q.data?.task && !task)) return <Loading what={`task #${id}`} />;
    if (q.error && apiError(q.error)?.code !== "NOT_FOUND")
      return (
        <div className="page">
          <p>
            <Link to="/tasks">← Tasks</Link>
          </p>
          <ErrorState message={apiError(q.error)?.message ?? "Could not load the task"} onRetry={() => refetch({ requestPolicy: "network-only" })} />
        </div>
      );
    return (
      <div className="page">
        <Empty>
          Task #{id} does not exist. <Link to="/tasks">Back to tasks</Link>
        </Empty>
      </div>
    );
  }

  const streamed = out.text;
  const shownOutput = task.status === "COMPLETED" && task.output ? task.output : streamed || task.output || "";
  const timeline = buildTimeline(task);

  return (
    <div className="page">
      <OutputStream key={`${id}:${outputKey}`} id={id} onChunk={(c) => dispatch({ type: "chunk", chunk: c })} />
      <p>
        <Link to="/tasks">← Tasks</Link>
      </p>
      <div className="page-head">
        <h1>
          Task #{idNumber(task.id)} <StatusBadge status={task.status} />
        </h1>
        <TaskActions id={task.id} status={task.status} />
      </div>

      {task.status === "PENDING" && (
        <div className="callout callout-wait" role="status" data-testid="pending-callout">
          <strong>Why is it waiting?</strong> {pendingReasonLabel(task.pendingReason)}
          {task.queuePosition ? ` — ${ordinal(task.queuePosition)} in line` : ""}. {task.pendingDetail}
        </div>
      )}
      {task.status === "FAILED" && task.error && (
        <div className="callout callout-bad" role="status">
          <strong>Failed:</strong> {task.error}
        </div>
      )}

      <section className="card">
        <dl className="facts">
          <div>
            <dt>Model</dt>
            <dd>
              <Link to={`/tasks?model=${idNumber(task.model.id)}`}>{task.model.name}</Link> ({enumLabel(task.model.type)}, {enumLabel(task.model.status)})
            </dd>
          </div>
          <div>
            <dt>Type</dt>
            <dd>{enumLabel(task.type)}</dd>
          </div>
          <div>
            <dt>Priority</dt>
            <dd>{priorityLabel(task.priority)}</dd>
          </div>
          <div>
            <dt>Attempts</dt>
            <dd>
              {task.attempts} of {task.maxRetries + 1}
            </dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>{formatDateTime(task.createdAt)}</dd>
          </div>
          {task.runAt && (
            <div>
              <dt>Scheduled for</dt>
              <dd data-testid="run-at">{formatDateTime(task.runAt)}</dd>
            </div>
          )}
          <div>
            <dt>Run time</dt>
            <dd>{formatDuration(durationBetween(task.startedAt, task.finishedAt))}</dd>
          </div>
          <div>
            <dt>Tokens</dt>
            <dd>
              {formatNumber(task.promptTokens)} in · {formatNumber(task.completionTokens)} out
              {task.tokenSource === "estimated" && (
                <span className="muted" data-testid="token-source" title="The provider reported no usage; the counts are estimated from the text (about four characters a token).">
                  {" "}
                  (estimated)
                </span>
              )}
            </dd>
          </div>
          {task.timeoutSeconds != null && (
            <div>
              <dt>Timeout</dt>
              <dd>{task.timeoutSeconds} s per attempt</dd>
            </div>
          )}
        </dl>
      </section>

      <div className="grid-2">
        <section className="card" aria-labelledby="input-h">
          <h2 id="input-h">Input</h2>
          <pre className="text-block">{task.input}</pre>
          {task.params && Object.keys(task.params).length > 0 && (
            <>
              <h3>Parameters</h3>
              <pre className="text-block">{JSON.stringify(task.params, null, 2)}</pre>
            </>
          )}
        </section>
        <section className="card" aria-labelledby="output-h">
          <h2 id="output-h">
            Output {running && task.status === "RUNNING" && <span className="live-dot" aria-label="streaming" />}
          </h2>
          {task.embedding && task.embedding.length > 0 ? (
            <p>
              Embedding vector of {task.embedding.length} dimensions: [{task.embedding.slice(0, 6).map((x) => x.toFixed(4)).join(", ")}
              {task.embedding.length > 6 ? ", …" : ""}]
            </p>
          ) : shownOutput ? (
            <pre className="text-block output" data-testid="task-output" aria-live="polite">
              {out.missedStart && task.status === "RUNNING" ? "… " : ""}
              {shownOutput}
            </pre>
          ) : (
            <p className="muted" data-testid="task-output-empty">
              {task.status === "PENDING" ? "No output yet: the task has not started." : task.status === "RUNNING" ? "Waiting for the first tokens…" : "No output."}
            </p>
          )}
        </section>
      </div>

      <section className="card" aria-labelledby="attempts-h">
        <h2 id="attempts-h">Attempts</h2>
        {!task.attemptHistory || task.attemptHistory.length === 0 ? (
          <Empty>No attempt yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Status</th>
                  <th scope="col">Started</th>
                  <th scope="col">Took</th>
                  <th scope="col">Worker</th>
                  <th scope="col">Tokens</th>
                  <th scope="col">Finish</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {[...task.attemptHistory]
                  .sort((a, b) => a.number - b.number)
                  .map((a) => (
                    <tr key={a.id} data-attempt={a.number}>
                      <td>{a.number}</td>
                      <td>
                        <StatusBadge status={a.status} />
                      </td>
                      <td>{formatDateTime(a.startedAt)}</td>
                      <td>{formatDuration(durationBetween(a.startedAt, a.finishedAt))}</td>
                      <td>{a.worker ?? "—"}</td>
                      <td data-testid="attempt-tokens">
                        {a.tokenSource ? `${formatNumber(a.promptTokens)} in · ${formatNumber(a.completionTokens)} out${a.tokenSource === "estimated" ? " (estimated)" : ""}` : "—"}
                      </td>
                      <td>{a.finishReason ?? "—"}</td>
                      <td className="cell-error">{a.error ? `${a.errorKind ? `${a.errorKind}: ` : ""}${a.error}` : "—"}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {task.callbackURL && (
        <section className="card" aria-labelledby="webhooks-h">
          <h2 id="webhooks-h">Webhooks</h2>
          <p>
            Callback URL: <code>{task.callbackURL}</code>
          </p>
          {!task.webhookDeliveries || task.webhookDeliveries.length === 0 ? (
            <Empty>No delivery yet: one is made when the task ends.</Empty>
          ) : (
            <div className="table-wrap">
              <table data-testid="webhook-deliveries">
                <thead>
                  <tr>
                    <th scope="col">Delivery</th>
                    <th scope="col">Event</th>
                    <th scope="col">Status</th>
                    <th scope="col">Try</th>
                    <th scope="col">Started</th>
                    <th scope="col">Took</th>
                    <th scope="col">Answer</th>
                  </tr>
                </thead>
                <tbody>
                  {task.webhookDeliveries.flatMap((d) =>
                    (d.attemptHistory && d.attemptHistory.length > 0 ? [...d.attemptHistory].sort((a, b) => a.number - b.number) : [null]).map((a, i) => (
                      <tr key={`${d.id}-${a ? a.id : "none"}`} data-delivery={idNumber(d.id)}>
                        <td>{i === 0 ? idNumber(d.id) : ""}</td>
                        <td>{i === 0 ? `task.${d.event.toLowerCase()}` : ""}</td>
                        <td>
                          {i === 0
                            ? `${d.status.toLowerCase()}${d.status === "PENDING" ? ` (next ${formatDateTime(d.nextAttemptAt)})` : ""}`
                            : ""}
                        </td>
                        <td>{a ? a.number : "—"}</td>
                        <td>{a ? formatDateTime(a.startedAt) : "—"}</td>
                        <td>{a ? `${formatNumber(a.durationMs)} ms` : "—"}</td>
                        <td className={a && a.error ? "cell-error" : undefined}>
                          {a ? (a.statusCode != null ? `${a.statusCode}${a.error ? ` · ${a.error}` : ""}` : a.error ?? "—") : "—"}
                        </td>
                      </tr>
                    )),
                  )}
                </tbody>
              </table>
            </div>
          )}
        </section>
      )}

      <section className="card" aria-labelledby="timeline-h">
        <h2 id="timeline-h">Timeline</h2>
        <ol className="timeline">
          {timeline.map((e, i) => (
            <li key={i} className={`tl-${e.tone}`}>
              <time dateTime={e.at}>{formatDateTime(e.at)}</time> <span>{e.label}</span>
              {e.detail && <div className="tl-detail">{e.detail}</div>}
            </li>
          ))}
        </ol>
      </section>
    </div>
  );
}

/** OutputStream holds the taskOutput subscription; a new key resubscribes. */
function OutputStream({ id, onChunk }: { id: string; onChunk: (c: OutputChunkLike) => void }) {
  useEvents(outputLive, { id }, (d) => onChunk(d.taskOutput));
  return null;
}

function newer<T extends { id: string; updatedAt: string }>(next: T, cur: T | null): T {
  if (!cur || cur.id !== next.id) return next;
  return Date.parse(next.updatedAt) >= Date.parse(cur.updatedAt) ? next : cur;
}
