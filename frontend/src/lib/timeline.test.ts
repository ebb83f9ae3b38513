import { describe, expect, it } from "vitest";
import { buildTimeline } from "./timeline";
import { ordinal, pendingReasonLabel } from "./pending";

describe("buildTimeline", () => {
  it("orders creation, attempts with their errors and timings, and the end", () => {
    const tl = buildTimeline({
      status: "COMPLETED",
      createdAt: "2024-05-01T12:00:00Z",
      finishedAt: "2024-05-01T12:00:09Z",
      attemptHistory: [
        { number: 2, status: "SUCCEEDED", startedAt: "2024-05-01T12:00:07Z", finishedAt: "2024-05-01T12:00:09Z", worker: "w2" },
        { number: 1, status: "FAILED", error: "boom", errorKind: "retryable", startedAt: "2024-05-01T12:00:01Z", finishedAt: "2024-05-01T12:00:01.250Z" },
      ],
    });
    expect(tl.map((e) => e.label)).toEqual([
      "Created",
      "Attempt 1 started",
      "Attempt 1 failed after 250 ms",
      "Attempt 2 started",
      "Attempt 2 succeeded after 2.0 s",
      "Completed",
    ]);
    expect(tl[2]).toMatchObject({ detail: "retryable: boom", tone: "bad" });
    expect(tl[3]?.detail).toBe("on w2");
  });
  it("shows a scheduled retry of a pending task", () => {
    const tl = buildTimeline({ status: "PENDING", createdAt: "2024-05-01T12:00:00Z", nextAttemptAt: "2024-05-01T12:01:00Z", attemptHistory: [] });
    expect(tl.map((e) => [e.label, e.tone])).toEqual([
      ["Created", "info"],
      ["Next attempt scheduled", "wait"],
    ]);
  });
});

describe("pending reasons", () => {
  it("labels known and unknown reasons", () => {
    expect(pendingReasonLabel("model_offline")).toBe("Model offline");
    expect(pendingReasonLabel("MODEL_AT_CAPACITY")).toBe("Model at its worker limit");
    expect(pendingReasonLabel("something_new")).toBe("Something new");
    expect(pendingReasonLabel(null)).toBe("Waiting");
    expect([1, 2, 3, 4, 11, 12, 13, 21, 112].map(ordinal)).toEqual(["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "112th"]);
  });
});
