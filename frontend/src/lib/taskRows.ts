// Live status changes in the task table. A TaskEvent moves a row that is on
// screen to its new status in place; an event about a task that is not on
// screen but belongs to the current view (a new task on the first page, a
// task that now matches the status filter) marks the page stale, and the
// page refetches. Tested in taskRows.test.ts.

export interface TaskRowLike {
  id: string;
  status: string;
  attempts: number;
  startedAt?: string | null;
  finishedAt?: string | null;
  updatedAt?: string;
  error?: string | null;
}

export interface TaskEventLike {
  taskID: string;
  modelID: string;
  priority: number;
  type: string;
  from: string | null;
  to: string;
  attempt: number;
  error?: string | null;
  at: string;
}

export interface TaskFilter {
  status?: string | null;
  modelID?: string | null;
  type?: string | null;
  priority?: number | null;
}

export function matchesFilter(ev: TaskEventLike, f: TaskFilter, status: string = ev.to): boolean {
  return (
    (!f.status || f.status === status) &&
    (!f.modelID || f.modelID === ev.modelID) &&
    (!f.type || f.type === ev.type) &&
    (!f.priority || f.priority === ev.priority)
  );
}

const terminal = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export function isTerminal(status: string): boolean {
  return terminal.has(status);
}

/**
 * applyTaskEvent returns the rows after ev, and whether the page should be
 * refetched because ev changes which tasks belong on it. snapshot is the
 * task as the event carried it (fresher fields such as pendingReason); it
 * replaces the row unless the row is newer.
 */
export function applyTaskEvent<R extends TaskRowLike>(
  rows: readonly R[],
  ev: TaskEventLike,
  filter: TaskFilter,
  firstPage: boolean,
  snapshot?: R | null,
): { rows: R[]; stale: boolean } {
  const i = rows.findIndex((r) => r.id === ev.taskID);
  if (i < 0) {
    // A new task lands on the first page (newest first); a task entering
    // the filtered status belongs somewhere in the list.
    const enters = matchesFilter(ev, filter) && (ev.from === null ? firstPage : Boolean(filter.status));
    return { rows: [...rows], stale: enters };
  }
  const row = rows[i] as R;
  // Events can arrive out of order against a fresher query result: never
  // move a row backwards past a later update.
  if (row.updatedAt && Date.parse(row.updatedAt) > Date.parse(ev.at)) return { rows: [...rows], stale: false };
  const stale = Boolean(filter.status) && filter.status !== ev.to;
  if (snapshot && snapshot.id === row.id && (!snapshot.updatedAt || !row.updatedAt || Date.parse(snapshot.updatedAt) >= Date.parse(row.updatedAt))) {
    const out = [...rows];
    out[i] = snapshot;
    return { rows: out, stale };
  }
  const next: R = { ...row, status: ev.to, attempts: Math.max(row.attempts, ev.attempt), updatedAt: ev.at };
  if (ev.to === "RUNNING") {
    next.startedAt = ev.at;
    next.finishedAt = null;
  } else if (terminal.has(ev.to)) {
    next.finishedAt = ev.at;
  } else if (ev.to === "PENDING") {
    next.finishedAt = null;
  }
  if (ev.error !== undefined) next.error = ev.error;
  const out = [...rows];
  out[i] = next;
  return { rows: out, stale };
}

/**
 * mergeRows takes a fresh query result (which decides which rows are shown,
 * and in which order) and keeps a row the live events made newer than the
 * result: a refetch that was sent before an event must not undo it.
 */
export function mergeRows<R extends TaskRowLike>(fetched: readonly R[], current: readonly R[] | null): R[] {
  if (!current) return [...fetched];
  const byId = new Map(current.map((r) => [r.id, r]));
  return fetched.map((f) => {
    const c = byId.get(f.id);
    if (!c?.updatedAt || !f.updatedAt) return f;
    return Date.parse(c.updatedAt) > Date.parse(f.updatedAt) ? c : f;
  });
}
