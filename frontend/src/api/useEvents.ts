import { useEffect, useRef } from "react";
import { useSubscription, type AnyVariables, type TypedDocumentNode } from "urql";

/** EventBatch keeps the last messages of a subscription with a running count. */
export interface EventBatch<T> {
  seq: number;
  items: T[];
}

const keep = 200;

/** appendEvent is the pure accumulator the subscription runs (urql may call it twice in StrictMode). */
export function appendEvent<T>(prev: EventBatch<T> | undefined, item: T): EventBatch<T> {
  const items = prev ? prev.items.slice(-(keep - 1)) : [];
  items.push(item);
  return { seq: (prev?.seq ?? 0) + 1, items };
}

/** unseen returns the items of batch newer than seq `seen`, oldest first. */
export function unseen<T>(batch: EventBatch<T>, seen: number): T[] {
  const firstSeq = batch.seq - batch.items.length + 1;
  return batch.items.slice(Math.max(0, seen + 1 - firstSeq));
}

/**
 * useEvents calls onEvent once for every message of a subscription, in
 * order, even when several arrive between two renders.
 */
export function useEvents<Data, Variables extends AnyVariables>(
  query: TypedDocumentNode<Data, Variables>,
  variables: Variables,
  onEvent: (data: Data) => void,
  pause = false,
): void {
  const [res] = useSubscription<Data, EventBatch<Data>, Variables>({ query, variables, pause }, appendEvent);
  const seen = useRef(0);
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    const batch = res.data;
    if (!batch) return;
    if (batch.seq < seen.current) seen.current = 0; // a new subscription
    for (const item of unseen(batch, seen.current)) handler.current(item);
    seen.current = batch.seq;
  }, [res.data]);
}
