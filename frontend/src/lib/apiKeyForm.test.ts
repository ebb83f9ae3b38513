import { describe, expect, it } from "vitest";
import { fieldOfServerError, formatCost, settingsValues, usageRatio, validateKeySettings } from "./apiKeyForm";

describe("validateKeySettings", () => {
  it("accepts a weight and caps, empty caps as none", () => {
    expect(validateKeySettings({ weight: "3", tokensPerDay: "1000", tokensPerMonth: "" })).toEqual({
      errors: {},
      input: { weight: 3, tokensPerDay: 1000, tokensPerMonth: 0 },
    });
  });
  it("refuses a weight outside 1..1000 or not whole", () => {
    for (const w of ["0", "1001", "2.5", "", "x", "-1"]) {
      const r = validateKeySettings({ weight: w, tokensPerDay: "", tokensPerMonth: "" });
      expect(r.input).toBeNull();
      expect(r.errors.weight).toMatch(/1 to 1000/);
    }
  });
  it("refuses negative or fractional caps, naming the field", () => {
    const r = validateKeySettings({ weight: "1", tokensPerDay: "-5", tokensPerMonth: "1.5" });
    expect(r.input).toBeNull();
    expect(r.errors.tokensPerDay).toMatch(/Tokens per day/);
    expect(r.errors.tokensPerMonth).toMatch(/Tokens per month/);
  });
});

describe("settingsValues", () => {
  it("shows no cap as an empty field", () => {
    expect(settingsValues({ weight: 2, tokensPerDay: null, tokensPerMonth: 500 })).toEqual({ weight: "2", tokensPerDay: "", tokensPerMonth: "500" });
  });
});

describe("fieldOfServerError", () => {
  it("maps the server's field names", () => {
    expect(fieldOfServerError("weight")).toBe("weight");
    expect(fieldOfServerError("input.tokens_per_day")).toBe("tokensPerDay");
    expect(fieldOfServerError("tokensPerMonth")).toBe("tokensPerMonth");
    expect(fieldOfServerError("model_budgets[0].model_id")).toBeNull();
    expect(fieldOfServerError(null)).toBeNull();
  });
});

describe("formatCost and usageRatio", () => {
  it("formats amounts", () => {
    expect(formatCost(0)).toBe("0");
    expect(formatCost(12.5)).toBe("12.50");
    expect(formatCost(0.000123456)).toBe("0.000123");
    expect(formatCost(null)).toBe("—");
  });
  it("rates usage against a cap", () => {
    expect(usageRatio(250, 1000)).toBe(0.25);
    expect(usageRatio(250, null)).toBeNull();
    expect(usageRatio(250, 0)).toBeNull();
  });
});
