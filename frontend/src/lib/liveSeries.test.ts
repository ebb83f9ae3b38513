import { describe, expect, it } from "vitest";
import { liveSeriesReducer, newLiveSeries } from "./liveSeries";

const t0 = Date.parse("2024-05-01T12:00:00Z");

describe("liveSeriesReducer", () => {
  it("covers the window with empty buckets", () => {
    const s = newLiveSeries(t0 + 5_000, 60_000, 10_000);
    expect(s.buckets.map((b) => b.start - t0)).toEqual([-50_000, -40_000, -30_000, -20_000, -10_000, 0]);
    expect(s.buckets.every((b) => b.completed === 0 && b.queued === null)).toBe(true);
  });

  it("counts transitions in their bucket", () => {
    let s = newLiveSeries(t0 + 5_000, 60_000, 10_000);
    s = liveSeriesReducer(s, { type: "event", at: t0 + 1_000, from: null, to: "PENDING" });
    s = liveSeriesReducer(s, { type: "event", at: t0 + 2_000, from: "PENDING", to: "RUNNING" });
    s = liveSeriesReducer(s, { type: "event", at: t0 + 3_000, from: "RUNNING", to: "COMPLETED" });
    s = liveSeriesReducer(s, { type: "event", at: t0 - 15_000, from: "RUNNING", to: "FAILED" });
    const last = s.buckets.at(-1);
    expect(last).toMatchObject({ created: 1, started: 1, completed: 1, failed: 0 });
    expect(s.buckets.at(-3)).toMatchObject({ failed: 1 }); // the bucket at t0-20s
  });

  it("slides the window forward on new events and ticks, dropping old buckets", () => {
    let s = newLiveSeries(t0, 30_000, 10_000);
    s = liveSeriesReducer(s, { type: "event", at: t0, from: "RUNNING", to: "COMPLETED" });
    s = liveSeriesReducer(s, { type: "event", at: t0 + 21_000, from: "RUNNING", to: "COMPLETED" });
    expect(s.buckets.map((b) => b.start - t0)).toEqual([0, 10_000, 20_000]);
    expect(s.buckets.map((b) => b.completed)).toEqual([1, 0, 1]);
    s = liveSeriesReducer(s, { type: "tick", now: t0 + 45_000 });
    expect(s.buckets.map((b) => b.start - t0)).toEqual([20_000, 30_000, 40_000]);
    expect(s.buckets.map((b) => b.completed)).toEqual([1, 0, 0]);
  });

  it("ignores events older than the window", () => {
    const s = newLiveSeries(t0, 30_000, 10_000);
    expect(liveSeriesReducer(s, { type: "event", at: t0 - 60_000, from: "RUNNING", to: "FAILED" })).toBe(s);
  });

  it("carries the last queue sample forward into later buckets", () => {
    let s = newLiveSeries(t0, 30_000, 10_000);
    s = liveSeriesReducer(s, { type: "sample", at: t0 + 1_000, queued: 7, running: 2 });
    s = liveSeriesReducer(s, { type: "tick", now: t0 + 25_000 });
    expect(s.buckets.map((b) => b.queued)).toEqual([7, 7, 7]);
    s = liveSeriesReducer(s, { type: "sample", at: t0 + 26_000, queued: 3, running: 1 });
    expect(s.buckets.map((b) => [b.queued, b.running])).toEqual([[7, 2], [7, 2], [3, 1]]);
    s = liveSeriesReducer(s, { type: "tick", now: t0 + 55_000 });
    expect(s.buckets.map((b) => b.queued)).toEqual([3, 3, 3]);
  });
});
