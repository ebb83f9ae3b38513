// The API connection's state, shared by the banner and every page: whether
// the websocket and plain HTTP requests reach the server, and an epoch that
// grows each time the connection comes back, so views refetch what they
// missed while it was down.

import { useSyncExternalStore } from "react";

export interface ConnectionState {
  /** The websocket is connected. */
  wsConnected: boolean;
  /** The last HTTP request failed to reach the server (network error or 502/503/504). */
  httpDown: boolean;
  /** The websocket has been connected at least once. */
  everConnected: boolean;
  /** Retries since the connection was lost. */
  retries: number;
  lastError: string | null;
  /** Increments when the API comes back after being unreachable. */
  epoch: number;
}

let state: ConnectionState = { wsConnected: false, httpDown: false, everConnected: false, retries: 0, lastError: null, epoch: 0 };
const listeners = new Set<() => void>();

function set(next: Partial<ConnectionState>): void {
  const merged = { ...state, ...next };
  const wasDown = isDown(state);
  if (wasDown && !isDown(merged) && merged.everConnected) merged.epoch = state.epoch + 1;
  state = merged;
  for (const l of listeners) l();
}

/** isDown is what the banner shows: the API cannot be reached. */
export function isDown(s: ConnectionState): boolean {
  return s.httpDown || (s.everConnected && !s.wsConnected) || (!s.everConnected && s.retries > 0);
}

export const connection = {
  get: (): ConnectionState => state,
  subscribe(l: () => void): () => void {
    listeners.add(l);
    return () => listeners.delete(l);
  },
  wsConnected(): void {
    set({ wsConnected: true, everConnected: true, retries: 0, lastError: null, httpDown: false });
  },
  wsClosed(reason: string): void {
    set({ wsConnected: false, lastError: reason });
  },
  wsRetry(retries: number): void {
    set({ retries });
  },
  httpFailed(reason: string): void {
    set({ httpDown: true, lastError: reason });
  },
  httpOk(): void {
    if (state.httpDown) set({ httpDown: false });
  },
  /** reset is for tests. */
  reset(): void {
    state = { wsConnected: false, httpDown: false, everConnected: false, retries: 0, lastError: null, epoch: 0 };
    for (const l of listeners) l();
  },
};

export function useConnection(): ConnectionState {
  return useSyncExternalStore(connection.subscribe, connection.get, connection.get);
}
