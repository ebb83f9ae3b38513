import { describe, expect, it } from "vitest";
import { applyOutputChunk, emptyOutput } from "./output";

describe("applyOutputChunk", () => {
  it("appends chunks in order and ignores repeats", () => {
    let s = emptyOutput;
    s = applyOutputChunk(s, { attempt: 1, seq: 1, text: "Hello", done: false });
    s = applyOutputChunk(s, { attempt: 1, seq: 2, text: " world", done: false });
    s = applyOutputChunk(s, { attempt: 1, seq: 2, text: " world", done: false });
    s = applyOutputChunk(s, { attempt: 1, seq: 3, text: "!", done: true });
    expect(s).toEqual({ attempt: 1, seq: 3, text: "Hello world!", done: true, missedStart: false });
  });
  it("starts over on a new attempt and drops late chunks of the old one", () => {
    let s = applyOutputChunk(emptyOutput, { attempt: 1, seq: 1, text: "partial", done: false });
    s = applyOutputChunk(s, { attempt: 2, seq: 1, text: "fresh", done: false });
    s = applyOutputChunk(s, { attempt: 1, seq: 2, text: " late", done: false });
    expect(s.text).toBe("fresh");
    expect(s.attempt).toBe(2);
  });
  it("notes when the view joined mid-stream", () => {
    expect(applyOutputChunk(emptyOutput, { attempt: 1, seq: 4, text: "…", done: false }).missedStart).toBe(true);
  });
});
