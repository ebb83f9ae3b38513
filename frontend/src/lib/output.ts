// Streaming output in the task detail view: chunks arrive per attempt, in
// order (seq is 1-based within an attempt). A new attempt starts the text
// over; a repeated or old chunk (after a resubscribe) is ignored. Tested in
// output.test.ts.

export interface OutputChunkLike {
  attempt: number;
  seq: number;
  text: string;
  done: boolean;
}

export interface OutputState {
  attempt: number;
  seq: number;
  text: string;
  done: boolean;
  /** True when the view joined mid-stream and missed earlier chunks. */
  missedStart: boolean;
}

export const emptyOutput: OutputState = { attempt: 0, seq: 0, text: "", done: false, missedStart: false };

export function applyOutputChunk(s: OutputState, c: OutputChunkLike): OutputState {
  if (c.attempt < s.attempt) return s;
  if (c.attempt > s.attempt) return { attempt: c.attempt, seq: c.seq, text: c.text, done: c.done, missedStart: c.seq > 1 };
  if (c.seq <= s.seq) return s;
  return { ...s, seq: c.seq, text: s.text + c.text, done: c.done };
}
