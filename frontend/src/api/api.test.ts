import { afterEach, describe, expect, it } from "vitest";
import { appendEvent, unseen, type EventBatch } from "./useEvents";
import { connection, isDown } from "./connection";
import { retryDelay } from "./client";
import { flattenConfig } from "../pages/system/systemConfig";

describe("event batches", () => {
  it("hands every message to the view once, in order, even when several arrive between renders", () => {
    let b: EventBatch<string> | undefined;
    b = appendEvent(b, "a");
    expect(unseen(b, 0)).toEqual(["a"]);
    const seen = b.seq;
    b = appendEvent(b, "b");
    b = appendEvent(b, "c");
    expect(unseen(b, seen)).toEqual(["b", "c"]);
    expect(unseen(b, b.seq)).toEqual([]);
  });
  it("keeps a bounded tail", () => {
    let b: EventBatch<number> | undefined;
    for (let i = 1; i <= 500; i++) b = appendEvent(b, i);
    expect(b?.items.length).toBe(200);
    expect(b && unseen(b, 498)).toEqual([499, 500]);
    expect(b && unseen(b, 0)[0]).toBe(301);
  });
});

describe("connection state", () => {
  afterEach(() => connection.reset());
  it("is down when the socket drops, and bumps the epoch when it comes back", () => {
    connection.wsConnected();
    expect(isDown(connection.get())).toBe(false);
    connection.wsClosed("websocket closed (1006)");
    connection.wsRetry(1);
    expect(isDown(connection.get())).toBe(true);
    expect(connection.get().epoch).toBe(0);
    connection.wsConnected();
    expect(isDown(connection.get())).toBe(false);
    expect(connection.get().epoch).toBe(1);
  });
  it("is down when HTTP requests fail, even with the socket up", () => {
    connection.wsConnected();
    connection.httpFailed("Failed to fetch");
    expect(isDown(connection.get())).toBe(true);
    connection.httpOk();
    expect(isDown(connection.get())).toBe(false);
    expect(connection.get().epoch).toBe(1);
  });
  it("is down when the very first connection keeps failing", () => {
    expect(isDown(connection.get())).toBe(false);
    connection.wsRetry(1);
    expect(isDown(connection.get())).toBe(true);
  });
});

describe("retryDelay", () => {
  it("doubles from 0.5 s and caps at 5 s, with jitter", () => {
    const mid = () => 0.5;
    expect([0, 1, 2, 3, 4, 10].map((n) => retryDelay(n, mid))).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
    expect(retryDelay(0, () => 0)).toBe(375);
    expect(retryDelay(10, () => 1)).toBe(6250);
  });
});

describe("flattenConfig", () => {
  it("lists settings as dotted keys with secrets last", () => {
    const rows = flattenConfig({ server: { port: 8080, cors_origins: null }, queue: { weights: { high: 6 } }, app: { name: "x" }, secrets: { "database.password": "****" } });
    expect(rows).toEqual([
      ["app.name", "x"],
      ["queue.weights.high", "6"],
      ["server.cors_origins", "—"],
      ["server.port", "8080"],
      ["database.password", "****"],
    ]);
  });
});
