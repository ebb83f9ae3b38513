import { describe, expect, it } from "vitest";
import { emptySettings, fieldOfServerError, formatCost, settingsValues, usageRatio, validateKeySettings } from "./apiKeyForm";

describe("validateKeySettings", () => {
  it("accepts a weight and caps, empty caps as none", () => {
    expect(validateKeySettings({ weight: "3", tokensPerDay: "1000", tokensPerMonth: "", modelBudgets: [] })).toEqual({
      errors: {},
      input: { weight: 3, tokensPerDay: 1000, tokensPerMonth: 0, modelBudgets: [] },
    });
  });
  it("refuses a weight outside 1..1000 or not whole", () => {
    for (const w of ["0", "1001", "2.5", "", "x", "-1"]) {
      const r = validateKeySettings({ ...emptySettings(), weight: w });
      expect(r.input).toBeNull();
      expect(r.errors.weight).toMatch(/1 to 1000/);
    }
  });
  it("refuses negative or fractional caps, naming the field", () => {
    const r = validateKeySettings({ ...emptySettings(), tokensPerDay: "-5", tokensPerMonth: "1.5" });
    expect(r.input).toBeNull();
    expect(r.errors.tokensPerDay).toMatch(/Tokens per day/);
    expect(r.errors.tokensPerMonth).toMatch(/Tokens per month/);
  });
  it("sends model caps as the API takes them, an empty cap as null", () => {
    const r = validateKeySettings({
      ...emptySettings(),
      modelBudgets: [
        { modelId: "4", tokensPerDay: "5000", tokensPerMonth: "" },
        { modelId: "7", tokensPerDay: " ", tokensPerMonth: "90000" },
      ],
    });
    expect(r.errors).toEqual({});
    expect(r.input?.modelBudgets).toEqual([
      { modelID: "4", tokensPerDay: 5000, tokensPerMonth: null },
      { modelID: "7", tokensPerDay: null, tokensPerMonth: 90000 },
    ]);
  });
  it("refuses a model cap without a model, a model named twice, a cap of 0 and a row without caps", () => {
    const r = validateKeySettings({
      ...emptySettings(),
      modelBudgets: [
        { modelId: "", tokensPerDay: "10", tokensPerMonth: "" },
        { modelId: "4", tokensPerDay: "0", tokensPerMonth: "x" },
        { modelId: "4", tokensPerDay: "", tokensPerMonth: "" },
      ],
    });
    expect(r.input).toBeNull();
    expect(r.errors).toEqual({
      "modelBudgets.0.modelId": "Choose a model",
      "modelBudgets.1.tokensPerDay": "Tokens per day must be a whole number of tokens above 0 (empty: no cap)",
      "modelBudgets.1.tokensPerMonth": "Tokens per month must be a whole number of tokens above 0 (empty: no cap)",
      "modelBudgets.2.modelId": "This model has a cap above already",
      "modelBudgets.2": "A model cap needs tokens per day or per month (or remove it)",
    });
  });
});

describe("settingsValues", () => {
  it("shows no cap as an empty field", () => {
    expect(settingsValues({ weight: 2, tokensPerDay: null, tokensPerMonth: 500 })).toEqual({ weight: "2", tokensPerDay: "", tokensPerMonth: "500", modelBudgets: [] });
    expect(settingsValues({ weight: 1, modelBudgets: [{ modelID: "3", tokensPerDay: 700, tokensPerMonth: null }] }).modelBudgets).toEqual([
      { modelId: "3", tokensPerDay: "700", tokensPerMonth: "" },
    ]);
  });
});

describe("fieldOfServerError", () => {
  it("maps the server's field names", () => {
    expect(fieldOfServerError("weight")).toBe("weight");
    expect(fieldOfServerError("input.tokens_per_day")).toBe("tokensPerDay");
    expect(fieldOfServerError("tokensPerMonth")).toBe("tokensPerMonth");
    expect(fieldOfServerError("model_budgets[0].model_id")).toBe("modelBudgets.0.modelId");
    expect(fieldOfServerError("input.model_budgets[2].tokens_per_month")).toBe("modelBudgets.2.tokensPerMonth");
    expect(fieldOfServerError("model_budgets[1]")).toBe("modelBudgets.1");
    expect(fieldOfServerError("model_budgets")).toBe("modelBudgets");
    expect(fieldOfServerError("callback_url")).toBeNull();
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
