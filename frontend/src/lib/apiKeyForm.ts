// The API key settings form (System page): weight, token budgets and
// token budgets per model. Checked here before sending, by the same rules as
// the server (apikeys.validate): weight 1..1000, caps whole numbers >= 0
// where 0 (or an empty field on create) means no cap; a model cap names a
// model once and has a day or a month cap (or both), each above 0. See
// docs/fairness.md.

/** ModelCapValues is one model cap's row as typed ("" for no cap). */
export interface ModelCapValues {
  modelId: string;
  tokensPerDay: string;
  tokensPerMonth: string;
}

export interface KeySettingsValues {
  weight: string;
  tokensPerDay: string;
  tokensPerMonth: string;
  modelBudgets: ModelCapValues[];
}

/** ModelCapInput is a model cap as the API takes it (null: no cap). */
export interface ModelCapInput {
  modelID: string;
  tokensPerDay: number | null;
  tokensPerMonth: number | null;
}

export interface KeySettingsInput {
  weight: number;
  tokensPerDay: number;
  tokensPerMonth: number;
  /** The whole list: it replaces the key's. */
  modelBudgets: ModelCapInput[];
}

export const roles = ["submitter", "viewer", "operator", "admin"] as const;

/** emptySettings is the create form's start: weight 1, no caps. */
export const emptySettings = (): KeySettingsValues => ({ weight: "1", tokensPerDay: "", tokensPerMonth: "", modelBudgets: [] });

/** emptyModelCap is a new model cap row, on the given model. */
export const emptyModelCap = (modelId = ""): ModelCapValues => ({ modelId, tokensPerDay: "", tokensPerMonth: "" });

/** settingsValues fills the form from a key ("" for no cap). */
export function settingsValues(k: {
  weight: number;
  tokensPerDay?: number | null;
  tokensPerMonth?: number | null;
  modelBudgets?: readonly { modelID: string; tokensPerDay?: number | null; tokensPerMonth?: number | null }[];
}): KeySettingsValues {
  const s = (n: number | null | undefined) => (n ? String(n) : "");
  return {
    weight: String(k.weight),
    tokensPerDay: s(k.tokensPerDay),
    tokensPerMonth: s(k.tokensPerMonth),
    modelBudgets: (k.modelBudgets ?? []).map((b) => ({ modelId: b.modelID, tokensPerDay: s(b.tokensPerDay), tokensPerMonth: s(b.tokensPerMonth) })),
  };
}

/** modelCapField names a model cap's field in the errors: "modelBudgets.2.tokensPerDay". */
export const modelCapField = (i: number, f?: keyof ModelCapValues) => (f ? `modelBudgets.${i}.${f}` : `modelBudgets.${i}`);

const whole = /^\d+$/;

/**
 * validateKeySettings returns the errors by field, and the input to send
 * when there are none (an empty cap is sent as 0: no cap; an empty model
 * cap as null).
 */
export function validateKeySettings(v: KeySettingsValues): { errors: Record<string, string>; input: KeySettingsInput | null } {
  const errors: Record<string, string> = {};
  const w = v.weight.trim();
  if (!whole.test(w) || Number(w) < 1 || Number(w) > 1000) errors.weight = "Weight must be a whole number from 1 to 1000";
  const cap = (field: "tokensPerDay" | "tokensPerMonth", label: string): number => {
    const s = v[field].trim();
    if (s === "") return 0;
    if (!whole.test(s)) {
      errors[field] = `${label} must be a whole number of tokens (0 or empty: no cap)`;
      return 0;
    }
    return Number(s);
  };
  const tokensPerDay = cap("tokensPerDay", "Tokens per day");
  const tokensPerMonth = cap("tokensPerMonth", "Tokens per month");
  const seen = new Set<string>();
  const modelBudgets = v.modelBudgets.map((b, i): ModelCapInput => {
    if (!b.modelId) errors[modelCapField(i, "modelId")] = "Choose a model";
    else if (seen.has(b.modelId)) errors[modelCapField(i, "modelId")] = "This model has a cap above already";
    seen.add(b.modelId);
    const mcap = (f: "tokensPerDay" | "tokensPerMonth", label: string): number | null => {
      const s = b[f].trim();
      if (s === "") return null;
      if (!whole.test(s) || Number(s) < 1) {
        errors[modelCapField(i, f)] = `${label} must be a whole number of tokens above 0 (empty: no cap)`;
        return null;
      }
      return Number(s);
    };
    const day = mcap("tokensPerDay", "Tokens per day");
    const month = mcap("tokensPerMonth", "Tokens per month");
    if (b.tokensPerDay.trim() === "" && b.tokensPerMonth.trim() === "") errors[modelCapField(i)] = "A model cap needs tokens per day or per month (or remove it)";
    return { modelID: b.modelId, tokensPerDay: day, tokensPerMonth: month };
  });
  if (Object.keys(errors).length) return { errors, input: null };
  return { errors, input: { weight: Number(w), tokensPerDay, tokensPerMonth, modelBudgets } };
}

const serverCapFields: Record<string, keyof ModelCapValues> = {
  model_id: "modelId",
  modelID: "modelId",
  tokens_per_day: "tokensPerDay",
  tokensPerDay: "tokensPerDay",
  tokens_per_month: "tokensPerMonth",
  tokensPerMonth: "tokensPerMonth",
};

/**
 * fieldOfServerError maps the server's field names to the form's:
 * "tokens_per_day" -> "tokensPerDay", "model_budgets[1].model_id" ->
 * "modelBudgets.1.modelId", "model_budgets[1]" -> "modelBudgets.1".
 */
export function fieldOfServerError(field: string | null): string | null {
  const f = (field ?? "").replace(/^input\./, "");
  const m = /^(?:model_budgets|modelBudgets)\[(\d+)\](?:\.(\w+))?$/.exec(f);
  if (m) {
    const i = Number(m[1]);
    if (!m[2]) return modelCapField(i);
    const sub = serverCapFields[m[2]];
    return sub ? modelCapField(i, sub) : modelCapField(i);
  }
  switch (f) {
    case "weight":
      return "weight";
    case "tokens_per_day":
    case "tokensPerDay":
      return "tokensPerDay";
    case "tokens_per_month":
    case "tokensPerMonth":
      return "tokensPerMonth";
    case "model_budgets":
    case "modelBudgets":
      return "modelBudgets";
    case "name":
      return "name";
    case "role":
      return "role";
  }
  return null;
}

/** formatCost renders an amount in the models' price currency: 0.000123 -> "0.000123", 12.5 -> "12.50". */
export function formatCost(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return "—";
  if (n === 0) return "0";
  if (Math.abs(n) >= 1) return n.toFixed(2);
  // Small amounts: three significant digits.
  return Number(n.toPrecision(3)).toString();
}

/** usageRatio is used / limit (null without a limit), for a meter. */
export function usageRatio(used: number, limit: number | null | undefined): number | null {
  if (!limit) return null;
  return used / limit;
}
