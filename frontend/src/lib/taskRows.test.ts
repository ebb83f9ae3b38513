import { describe, expect, it } from "vitest";
import { applyTaskEvent, matchesFilter, mergeRows, type TaskEventLike, type TaskRowLike } from "./taskRows";

const row = (id: string, status: string, updatedAt = "2024-05-01T12:00:00Z"): TaskRowLike => ({ id, status, attempts: 0, updatedAt });
const ev = (over: Partial<TaskEventLike>): TaskEventLike => ({
  taskID: "1", modelID: "m1", priority: 2, type: "TEXT_GENERATION", from: "PENDING", to: "RUNNING", attempt: 1, at: "2024-05-01T12:00:01Z", ...over,
});

describe("applyTaskEvent", () => {
  it("moves a visible row through pending -> running -> completed in place", () => {
    let rows = [row("1", "PENDING"), row("2", "COMPLETED")];
    let r = applyTaskEvent(rows, ev({}), {}, true);
    expect(r.stale).toBe(false);
    expect(r.rows[0]).toMatchObject({ status: "RUNNING", attempts: 1, startedAt: "2024-05-01T12:00:01Z", finishedAt: null });
    rows = r.rows;
    r = applyTaskEvent(rows, ev({ from: "RUNNING", to: "COMPLETED", at: "2024-05-01T12:00:03Z" }), {}, true);
    expect(r.rows[0]).toMatchObject({ status: "COMPLETED", finishedAt: "2024-05-01T12:00:03Z" });
    expect(r.rows[1]).toBe(rows[1]);
  });

  it("does not move a row backwards past a fresher query result", () => {
    const rows = [row("1", "COMPLETED", "2024-05-01T12:00:05Z")];
    const r = applyTaskEvent(rows, ev({}), {}, true);
    expect(r.rows[0]?.status).toBe("COMPLETED");
  });

  it("uses the event's task snapshot when it is at least as fresh", () => {
    const rows = [row("1", "PENDING")];
    const snap = { ...row("1", "PENDING", "2024-05-01T12:00:02Z"), pendingReason: "model_offline" };
    const r = applyTaskEvent(rows, ev({ from: "RUNNING", to: "PENDING", at: "2024-05-01T12:00:02Z" }), {}, true, snap);
    expect(r.rows[0]).toBe(snap);
  });

  it("marks the first page stale for a new matching task, not other pages", () => {
    const created = ev({ taskID: "9", from: null, to: "PENDING" });
    expect(applyTaskEvent([row("1", "PENDING")], created, {}, true).stale).toBe(true);
    expect(applyTaskEvent([row("1", "PENDING")], created, {}, false).stale).toBe(false);
    expect(applyTaskEvent([row("1", "PENDING")], created, { modelID: "other" }, true).stale).toBe(false);
  });

  it("marks the page stale when a task enters or leaves the status filter", () => {
    // Enters: a task not on screen becomes FAILED while filtering FAILED.
    expect(applyTaskEvent([], ev({ taskID: "5", from: "RUNNING", to: "FAILED" }), { status: "FAILED" }, false).stale).toBe(true);
    // Leaves: a RUNNING row completes while filtering RUNNING.
    const r = applyTaskEvent([row("1", "RUNNING")], ev({ from: "RUNNING", to: "COMPLETED" }), { status: "RUNNING" }, true);
    expect(r.stale).toBe(true);
    expect(r.rows[0]?.status).toBe("COMPLETED");
    // Unrelated: no filter, task not shown, not new.
    expect(applyTaskEvent([], ev({ taskID: "5" }), {}, true).stale).toBe(false);
  });

  it("matches filters on model, type and priority", () => {
    const e = ev({ modelID: "m1", type: "TRANSLATION", priority: 3 });
    expect(matchesFilter(e, { modelID: "m1", type: "TRANSLATION", priority: 3 })).toBe(true);
    expect(matchesFilter(e, { priority: 1 })).toBe(false);
    expect(matchesFilter(e, { type: "EMBEDDING" })).toBe(false);
  });
});

describe("mergeRows", () => {
  it("keeps rows the events made newer than a late query result", () => {
    const fetched = [row("3", "PENDING", "2024-05-01T12:00:05Z"), row("1", "RUNNING", "2024-05-01T12:00:01Z")];
    const current = [row("1", "COMPLETED", "2024-05-01T12:00:04Z"), row("2", "FAILED")];
    const merged = mergeRows(fetched, current);
    expect(merged.map((r) => [r.id, r.status])).toEqual([
      ["3", "PENDING"],
      ["1", "COMPLETED"],
    ]);
    expect(mergeRows(fetched, null)).toEqual(fetched);
  });
});
