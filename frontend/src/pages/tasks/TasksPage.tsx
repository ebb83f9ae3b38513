import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "urql";
import { useEvents } from "../../api/useEvents";
import { graphql } from "../../gql";
import type { TaskRowFieldsFragment, TaskStatus, TaskType, TaskWhereInput } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { Empty, ErrorState, Loading } from "../../components/states";
import { StatusBadge } from "../../components/StatusBadge";
import { enumLabel, formatRelative, priorityLabel, truncate } from "../../lib/format";
import { applyTaskEvent, mergeRows, type TaskFilter } from "../../lib/taskRows";
import { taskTypes } from "../../lib/taskForm";
import { ordinal, pendingReasonLabel } from "../../lib/pending";
import { modelChoicesQuery } from "./documents";
import { TaskActions } from "./TaskActions";
import { CreateTaskForm } from "./CreateTaskForm";
import { idNumber, nodeId } from "../../lib/ids";

const taskListQuery = graphql(`
  query TaskList($first: Int!, $after: Cursor, $where: TaskWhereInput) {
    tasks(first: $first, after: $after, where: $where, orderBy: [{ field: CREATED_AT, direction: DESC }]) {
      totalCount
      pageInfo {
        hasNextPage
        endCursor
      }
      edges {
        node {
          ...TaskRowFields
        }
      }
    }
  }
`);

const taskListEvents = graphql(`
  subscription TaskListEvents($filter: TaskEventFilter) {
    taskEvents(filter: $filter) {
      taskID
      modelID
      priority
      type
      from
      to
      attempt
      error
      at
      task {
        ...TaskRowFields
      }
    }
  }
`);

const statuses: TaskStatus[] = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const pageSizes = [20, 50, 100];

function isStatus(s: string | null): s is TaskStatus {
  return s != null && (statuses as string[]).includes(s);
}
function isType(s: string | null): s is TaskType {
  return s != null && (taskTypes as readonly string[]).includes(s);
}

export function TasksPage() {
  const [params, setParams] = useSearchParams();
  const status = isStatus(params.get("status")) ? (params.get("status") as TaskStatus) : null;
  const type = isType(params.get("type")) ? (params.get("type") as TaskType) : null;
  // The URL names the model by number (?model=3); GraphQL and events by id.
  const modelParam = params.get("model") || null;
  const modelID = modelParam ? nodeId("Model", idNumber(modelParam)) : null;
  const priority = ["1", "2", "3"].includes(params.get("priority") ?? "") ? Number(params.get("priority")) : null;
  const pageSize = pageSizes.includes(Number(params.get("size"))) ? Number(params.get("size")) : 20;
  const [showCreate, setShowCreate] = useState(params.get("new") === "1");
  const [created, setCreated] = useState<string | null>(null);

  // Cursor paging: cursors[i] is the `after` of page i+1 (page 1 has none).
  const [cursors, setCursors] = useState<string[]>([]);
  const filterKey = `${status}|${type}|${modelID}|${priority}|${pageSize}`;
  useEffect(() => setCursors([]), [filterKey]);
  const page = cursors.length + 1;
  const after = cursors.at(-1) ?? null;

  const where = useMemo<TaskWhereInput>(() => {
    const w: TaskWhereInput = {};
    if (status) w.status = status;
    if (type) w.type = type;
    if (modelID) w.modelID = modelID;
    if (priority) w.priority = priority;
    return w;
  }, [status, type, modelID, priority]);

  const [q, refetch] = useQuery({ query: taskListQuery, variables: { first: pageSize, after, where } });
  const [models] = useQuery({ query: modelChoicesQuery });
  const refetchNow = useCallback(() => refetch({ requestPolicy: "network-only" }), [refetch]);
  useRefetchOnReconnect(refetchNow);

  // Rows on screen: the query result with live events applied.
  const [rows, setRows] = useState<TaskRowFieldsFragment[] | null>(null);
  const rowsRef = useRef(rows);
  rowsRef.current = rows;
  const data = q.data?.tasks;
  useEffect(() => {
    if (!data) return;
    const merged = mergeRows(data.edges?.flatMap((e) => (e?.node ? [e.node] : [])) ?? [], rowsRef.current);
    rowsRef.current = merged;
    setRows(merged);
  }, [data]);

  const filter: TaskFilter = { status, modelID, type, priority };
  const filterRef = useRef(filter);
  filterRef.current = filter;
  const pageRef = useRef(page);
  pageRef.current = page;
  const staleTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const scheduleRefetch = useCallback(
    (delay: number) => {
      if (staleTimer.current) return;
      staleTimer.current = setTimeout(() => {
        staleTimer.current = null;
        refetchNow();
      }, delay);
    },
    [refetchNow],
  );
  useEffect(() => () => {
    if (staleTimer.current) clearTimeout(staleTimer.current);
  }, []);

  const subFilter = useMemo(() => ({ modelIDs: modelID ? [modelID] : null, priorities: priority ? [priority] : null }), [modelID, priority]);
  useEvents(taskListEvents, { filter: subFilter }, (ev) => {
    const e = ev.taskEvents;
    const cur = rowsRef.current;
    if (!cur) return;
    const res = applyTaskEvent(cur, { ...e, from: e.from ?? null }, filterRef.current, pageRef.current === 1, e.task ?? null);
    rowsRef.current = res.rows;
    setRows(res.rows);
    // A new task, or one that left or joined the filter: refetch soon.
    // Pending rows' reasons and queue positions move with other tasks.
    if (res.stale) scheduleRefetch(300);
    else if (res.rows.some((r) => r.status === "PENDING") || e.to === "PENDING") scheduleRefetch(1500);
  });

  const setFilter = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  const modelList = (models.data?.models.edges ?? []).flatMap((e) => (e?.node ? [e.node] : []));
  const total = data?.totalCount ?? 0;
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const anyFilter = Boolean(status || type || modelID || priority);

  return (
    <div className="page">
      <div className="page-head">
        <h1>Tasks</h1>
        <button type="button" className="btn-primary" aria-expanded={showCreate} aria-controls="create-task" onClick={() => setShowCreate((v) => !v)}>
          {showCreate ? "Close form" : "New task"}
        </button>
      </div>
      {showCreate && (
        <section id="create-task" className="card" aria-labelledby="create-task-h">
          <h2 id="create-task-h">New task</h2>
          <CreateTaskForm
            models={modelList.filter((m) => !m.deletedAt)}
            modelsLoading={models.fetching && !models.data}
            defaultModel={modelID ?? undefined}
            onCreated={(id) => {
              setCreated(id);
              scheduleRefetch(0);
            }}
          />
        </section>
      )}
      {created && (
        <p className="notice" role="status">
          Task <Link to={`/tasks/${idNumber(created)}`}>#{idNumber(created)}</Link> was created.
        </p>
      )}
      <form className="filters" aria-label="Filter tasks" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={status ?? ""} onChange={(e) => setFilter("status", e.target.value)}>
            <option value="">any</option>
            {statuses.map((s) => (
              <option key={s} value={s}>
                {enumLabel(s)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Model
          <select value={modelID ?? ""} onChange={(e) => setFilter("model", e.target.value && idNumber(e.target.value))}>
            <option value="">any</option>
            {modelList.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
                {m.deletedAt ? " (deleted)" : ""}
              </option>
            ))}
          </select>
        </label>
        <label>
          Type
          <select value={type ?? ""} onChange={(e) => setFilter("type", e.target.value)}>
            <option value="">any</option>
            {taskTypes.map((t) => (
              <option key={t} value={t}>
                {enumLabel(t)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Priority
          <select value={priority ?? ""} onChange={(e) => setFilter("priority", e.target.value)}>
            <option value="">any</option>
            {[3, 2, 1].map((p) => (
              <option key={p} value={p}>
                {priorityLabel(p)}
              </option>
            ))}
          </select>
        </label>
        <label>
          Per page
          <select value={pageSize} onChange={(e) => setFilter("size", e.target.value === "20" ? "" : e.target.value)}>
            {pageSizes.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        {anyFilter && (
          <button type="button" className="btn-link" onClick={() => setParams(new URLSearchParams(), { replace: true })}>
            Clear filters
          </button>
        )}
      </form>

      {!rows && q.fetching && <Loading what="tasks" />}
      {q.error && !q.fetching && (
        <ErrorState message={apiError(q.error)?.message ?? "Could not load tasks"} onRetry={refetchNow} />
      )}
      {rows && rows.length === 0 && !q.error && (
        <Empty>{anyFilter ? "No task matches these filters." : "No tasks yet. Create one with “New task”."}</Empty>
      )}
      {rows && rows.length > 0 && <TaskTable rows={rows} />}
      {rows && total > 0 && (
        <nav className="pager" aria-label="Pages">
          <button type="button" disabled={page === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
            ← Previous
          </button>
          <span aria-live="polite">
            Page {page} of {pages} · {total} task{total === 1 ? "" : "s"}
          </span>
          <button
            type="button"
            disabled={!data?.pageInfo.hasNextPage || !data.pageInfo.endCursor}
            onClick={() => {
              const c = data?.pageInfo.endCursor;
              if (c) setCursors((cs) => [...cs, c]);
            }}
          >
            Next →
          </button>
        </nav>
      )}
    </div>
  );
}

function TaskTable({ rows }: { rows: readonly TaskRowFieldsFragment[] }) {
  return (
    <div className="table-wrap">
      <table className="task-table">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Status</th>
            <th scope="col">Model</th>
            <th scope="col">Type</th>
            <th scope="col">Priority</th>
            <th scope="col">Input</th>
            <th scope="col">Attempts</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.id} data-task-id={idNumber(t.id)} data-status={t.status}>
              <td>
                <Link to={`/tasks/${idNumber(t.id)}`}>#{idNumber(t.id)}</Link>
              </td>
              <td>
                <StatusBadge status={t.status} />
                {t.status === "PENDING" && (
                  <div className="why" data-testid="pending-reason">
                    {pendingReasonLabel(t.pendingReason)}
                    {t.queuePosition ? ` · ${ordinal(t.queuePosition)} in line` : ""}
                  </div>
                )}
                {t.status === "FAILED" && t.error && <div className="why why-bad">{truncate(t.error, 60)}</div>}
              </td>
              <td>{t.model.name}</td>
              <td>{enumLabel(t.type)}</td>
              <td>
                <span className={`prio prio-${t.priority}`}>{priorityLabel(t.priority)}</span>
              </td>
              <td className="cell-input" title={t.input}>
                {truncate(t.input, 60)}
              </td>
              <td>
                {t.attempts}/{t.maxRetries + 1}
              </td>
              <td title={t.createdAt}>{formatRelative(t.createdAt)}</td>
              <td>
                <TaskActions id={t.id} status={t.status} compact />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
