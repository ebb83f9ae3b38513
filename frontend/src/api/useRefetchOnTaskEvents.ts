import { useEffect, useRef } from "react";
import { graphql } from "../gql";
import { useEvents } from "./useEvents";

const taskEventsLive = graphql(`
  subscription RefetchOnTaskEvents {
    taskEvents {
      taskID
    }
  }
`);

/**
 * useRefetchOnTaskEvents keeps a view that sums tasks (costs, token
 * usage) current while tasks change: on the live task events it refetches
 * at most every 3 s, and once after the last change.
 */
export function useRefetchOnTaskEvents(refetch: () => void): void {
  const fn = useRef(refetch);
  fn.current = refetch;
  const lastFetch = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEvents(taskEventsLive, {}, () => {
    if (timer.current) return;
    const wait = Math.max(1000, lastFetch.current + 3000 - Date.now());
    timer.current = setTimeout(() => {
      timer.current = null;
      lastFetch.current = Date.now();
      fn.current();
    }, wait);
  });
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );
}
