// The task detail's timeline: what happened to a task, in order, built from
// the task's timestamps and its attempts. Tested in timeline.test.ts.

import { durationBetween, formatDuration } from "./format";

export interface AttemptLike {
  number: number;
  status: string;
  error?: string | null;
  errorKind?: string | null;
  worker?: string | null;
  startedAt: string;
  finishedAt?: string | null;
}

export interface TaskTimelineInput {
  status: string;
  createdAt: string;
  finishedAt?: string | null;
  nextAttemptAt?: string | null;
  error?: string | null;
  attemptHistory?: readonly AttemptLike[] | null;
}

export type TimelineTone = "info" | "ok" | "bad" | "wait";

export interface TimelineEntry {
  at: string;
  label: string;
  detail?: string;
  tone: TimelineTone;
}

const attemptEnd: Record<string, { label: string; tone: TimelineTone }> = {
  SUCCEEDED: { label: "succeeded", tone: "ok" },
  FAILED: { label: "failed", tone: "bad" },
  LOST: { label: "lost its worker", tone: "bad" },
  CANCELLED: { label: "cancelled", tone: "bad" },
};

export function buildTimeline(t: TaskTimelineInput, now: number = Date.now()): TimelineEntry[] {
  const out: TimelineEntry[] = [{ at: t.createdAt, label: "Created", tone: "info" }];
  const attempts = [...(t.attemptHistory ?? [])].sort((a, b) => a.number - b.number);
  for (const a of attempts) {
    out.push({ at: a.startedAt, label: `Attempt ${a.number} started`, detail: a.worker ? `on ${a.worker}` : undefined, tone: "info" });
    if (a.finishedAt) {
      const end = attemptEnd[a.status] ?? { label: a.status.toLowerCase(), tone: "info" as const };
      const took = formatDuration(durationBetween(a.startedAt, a.finishedAt, now));
      const why = a.error ? `${a.errorKind ? `${a.errorKind}: ` : ""}${a.error}` : undefined;
      out.push({ at: a.finishedAt, label: `Attempt ${a.number} ${end.label} after ${took}`, detail: why, tone: end.tone });
    }
  }
  if (t.status === "PENDING" && t.nextAttemptAt) {
    out.push({ at: t.nextAttemptAt, label: "Next attempt scheduled", tone: "wait" });
  }
  if (t.finishedAt && (t.status === "COMPLETED" || t.status === "FAILED" || t.status === "CANCELLED")) {
    const tone: TimelineTone = t.status === "COMPLETED" ? "ok" : "bad";
    const label = { COMPLETED: "Completed", FAILED: "Failed", CANCELLED: "Cancelled" }[t.status];
    out.push({ at: t.finishedAt, label, detail: t.status === "FAILED" && t.error ? t.error : undefined, tone });
  }
  // Stable sort by time: equal times keep the order above (start before end).
  return out
    .map((e, i) => ({ e, i }))
    .sort((a, b) => Date.parse(a.e.at) - Date.parse(b.e.at) || a.i - b.i)
    .map((x) => x.e);
}
