import { describe, expect, it } from "vitest";
import { durationBetween, enumLabel, enumSlug, formatDuration, formatNumber, formatPercent, formatRate, formatRelative, priorityLabel, shortDay, truncate } from "./format";

describe("formatDuration", () => {
  it.each([
    [null, "—"],
    [-5, "—"],
    [0, "0 ms"],
    [850.4, "850 ms"],
    [1234, "1.2 s"],
    [42_000, "42 s"],
    [125_000, "2 min 5 s"],
    [120_000, "2 min"],
    [3_780_000, "1 h 3 min"],
    [7_200_000, "2 h"],
  ])("%s ms -> %s", (ms, want) => {
    expect(formatDuration(ms)).toBe(want);
  });
});

describe("durationBetween", () => {
  it("measures to the end, or to now while running", () => {
    expect(durationBetween("2024-01-01T00:00:00Z", "2024-01-01T00:00:01.500Z")).toBe(1500);
    expect(durationBetween("2024-01-01T00:00:00Z", null, Date.parse("2024-01-01T00:00:03Z"))).toBe(3000);
    expect(durationBetween(null, "2024-01-01T00:00:00Z")).toBeNull();
    expect(durationBetween("garbage", null)).toBeNull();
  });
});

describe("formatRelative", () => {
  const now = Date.parse("2024-05-01T12:00:00Z");
  it.each([
    ["2024-05-01T12:00:00Z", "just now"],
    ["2024-05-01T11:59:48Z", "12 s ago"],
    ["2024-05-01T11:55:00Z", "5 min ago"],
    ["2024-05-01T09:00:00Z", "3 h ago"],
    ["2024-04-29T12:00:00Z", "2 d ago"],
    ["2024-05-01T12:00:30Z", "in 30 s"],
    [null, "—"],
  ])("%s -> %s", (iso, want) => {
    expect(formatRelative(iso, now)).toBe(want);
  });
});

describe("numbers", () => {
  it("formats percentages without a useless .0", () => {
    expect(formatPercent(0.975)).toBe("97.5%");
    expect(formatPercent(1)).toBe("100%");
    expect(formatPercent(0)).toBe("0%");
    expect(formatPercent(Number.NaN)).toBe("—");
  });
  it("formats counts and rates", () => {
    expect(formatNumber(1234567)).toBe("1,234,567");
    expect(formatRate(12, "min")).toBe("12/min");
    expect(formatRate(2.5, "s")).toBe("2.5/s");
    expect(formatRate(0, "min")).toBe("0/min");
    expect(formatRate(150.4, "min")).toBe("150/min");
  });
});

describe("labels", () => {
  it("turns enum values into words and REST slugs", () => {
    expect(enumLabel("TEXT_GENERATION")).toBe("text generation");
    expect(enumSlug("TEXT_GENERATION")).toBe("text-generation");
    expect(enumLabel(null)).toBe("—");
  });
  it("names SPEC priorities", () => {
    expect([3, 2, 1, 7].map(priorityLabel)).toEqual(["high", "medium", "low", "priority 7"]);
  });
  it("truncates on one line", () => {
    expect(truncate("a\n b   c", 10)).toBe("a b c");
    expect(truncate("abcdefghijkl", 5)).toBe("abcd…");
    expect(shortDay("2024-05-01")).toBe("05-01");
  });
});
