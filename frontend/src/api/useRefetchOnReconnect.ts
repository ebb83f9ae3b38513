import { useEffect, useRef } from "react";
import { useConnection } from "./connection";

/**
 * useRefetchOnReconnect calls refetch each time the API comes back after
 * being unreachable, so a view shows what happened while it was away.
 */
export function useRefetchOnReconnect(refetch: () => void): void {
  const { epoch } = useConnection();
  const first = useRef(epoch);
  const fn = useRef(refetch);
  fn.current = refetch;
  useEffect(() => {
    if (epoch !== first.current) fn.current();
  }, [epoch]);
}
