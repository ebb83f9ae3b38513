// The Overview's live chart: task transitions of the last minutes, counted
// in fixed buckets, and the queue depth and running count sampled from the
// stats stream. A reducer, so the page stays a thin view (tested in
// liveSeries.test.ts).

export interface LiveBucket {
  /** Start of the bucket (ms since epoch). */
  start: number;
  created: number;
  started: number;
  completed: number;
  failed: number;
  /** Last sampled queue depth in the bucket (carried forward when no sample came). */
  queued: number | null;
  running: number | null;
}

export interface LiveSeries {
  bucketMs: number;
  windowMs: number;
  buckets: LiveBucket[];
}

export type LiveAction =
  | { type: "event"; at: number; from: string | null; to: string }
  | { type: "sample"; at: number; queued: number; running: number }
  | { type: "tick"; now: number };

export function newLiveSeries(now: number, windowMs = 10 * 60_000, bucketMs = 10_000): LiveSeries {
  return advance({ bucketMs, windowMs, buckets: [] }, now);
}

function bucketStart(s: LiveSeries, t: number): number {
  return Math.floor(t / s.bucketMs) * s.bucketMs;
}

function emptyBucket(start: number, prev?: LiveBucket): LiveBucket {
  return { start, created: 0, started: 0, completed: 0, failed: 0, queued: prev?.queued ?? null, running: prev?.running ?? null };
}

/** advance makes the buckets cover exactly the window ending at now. */
function advance(s: LiveSeries, now: number): LiveSeries {
  const last = bucketStart(s, now);
  const first = last - s.windowMs + s.bucketMs;
  const byStart = new Map(s.buckets.map((b) => [b.start, b]));
  const out: LiveBucket[] = [];
  // Carry the last known sample into the window from older buckets.
  let prev: LiveBucket | undefined = [...s.buckets].reverse().find((b) => b.start < first);
  for (let t = first; t <= last; t += s.bucketMs) {
    const b = byStart.get(t) ?? emptyBucket(t, prev);
    out.push(b);
    prev = b;
  }
  return { ...s, buckets: out };
}

export function liveSeriesReducer(s: LiveSeries, a: LiveAction): LiveSeries {
  switch (a.type) {
    case "tick":
      return advance(s, a.now);
    case "event":
    case "sample": {
      const start = bucketStart(s, a.at);
      const lastStart = s.buckets.at(-1)?.start ?? start;
      // Outside the window (a late event): ignore.
      if (start < lastStart - s.windowMs + s.bucketMs) return s;
      const next = start > lastStart ? advance(s, a.at) : s;
      const buckets = next.buckets.map((b) => {
        if (b.start < start) return b;
        if (b.start > start) {
          // A sample changes the carried value of later empty buckets too.
          return a.type === "sample" && b.queued === null ? { ...b, queued: a.queued, running: a.running } : b;
        }
        if (a.type === "sample") return { ...b, queued: a.queued, running: a.running };
        const c = { ...b };
        if (a.from === null) c.created++;
        if (a.to === "RUNNING") c.started++;
        else if (a.to === "COMPLETED") c.completed++;
        else if (a.to === "FAILED") c.failed++;
        return c;
      });
      return { ...next, buckets };
    }
  }
}
