// The GraphQL client: queries and mutations over HTTP, subscriptions over
// the graphql-transport-ws protocol. The websocket retries forever with a
// capped backoff, so the dashboard recovers by itself when the API returns;
// connection.ts tells the banner and the views.

import { Client, cacheExchange, fetchExchange, subscriptionExchange } from "urql";
import { createClient as createWSClient, type Client as WSClient } from "graphql-ws";
import { connection } from "./connection";
import { apiKey } from "./apiKey";

/** retryDelay is the wait before reconnect attempt n (0-based): 0.5 s doubling, capped at 5 s, with jitter. */
export function retryDelay(n: number, random: () => number = Math.random): number {
  const base = Math.min(5000, 500 * 2 ** n);
  return Math.round(base * (0.75 + random() * 0.5));
}

function wsURL(): string {
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${window.location.host}/graphql`;
}

function authHeaders(): Record<string, string> {
  const key = apiKey.get();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** trackedFetch reports whether HTTP requests reach the API. */
const trackedFetch: typeof fetch = async (input, init) => {
  try {
    const res = await fetch(input, init);
    if (res.status === 502 || res.status === 503 || res.status === 504) {
      connection.httpFailed(`HTTP ${res.status} from the API`);
    } else {
      connection.httpOk();
    }
    return res;
  } catch (e) {
    connection.httpFailed(e instanceof Error ? e.message : String(e));
    throw e;
  }
};

export function createWS(): WSClient {
  let retries = 0;
  return createWSClient({
    url: wsURL(),
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async (n) => {
      retries = n + 1;
      connection.wsRetry(retries);
      await new Promise((r) => setTimeout(r, retryDelay(n)));
    },
    connectionParams: () => authHeaders(),
    on: {
      connected: () => {
        retries = 0;
        connection.wsConnected();
      },
      closed: (ev) => {
        const code = (ev as { code?: number } | undefined)?.code;
        connection.wsClosed(code ? `websocket closed (${code})` : "websocket closed");
      },
    },
  });
}

export function createGraphQLClient(ws: WSClient): Client {
  return new Client({
    url: "/graphql",
    fetch: trackedFetch,
    fetchOptions: () => ({ headers: authHeaders() }),
    requestPolicy: "cache-and-network",
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
}
