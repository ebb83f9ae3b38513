// The API key settings form (System page): weight and token budgets.
// Checked here before sending, by the same rules as the server
// (apikeys.validate): weight 1..1000, caps whole numbers >= 0 where 0 (or
// an empty field on create) means no cap. See docs/fairness.md.

export interface KeySettingsValues {
  weight: string;
  tokensPerDay: string;
  tokensPerMonth: string;
}

export interface KeySettingsInput {
  weight: number;
  tokensPerDay: number;
  tokensPerMonth: number;
}

export const roles = ["submitter", "viewer", "operator", "admin"] as const;

/** settingsValues fills the form from a key ("" for no cap). */
export function settingsValues(k: { weight: number; tokensPerDay?: number | null; tokensPerMonth?: number | null }): KeySettingsValues {
  return { weight: String(k.weight), tokensPerDay: k.tokensPerDay ? String(k.tokensPerDay) : "", tokensPerMonth: k.tokensPerMonth ? String(k.tokensPerMonth) : "" };
}

const whole = /^\d+$/;

/**
 * validateKeySettings returns the errors by field, and the input to send
 * when there are none (an empty cap is sent as 0: no cap).
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
  if (Object.keys(errors).length) return { errors, input: null };
  return { errors, input: { weight: Number(w), tokensPerDay, tokensPerMonth } };
}

/** fieldOfServerError maps the server's field names to the form's. */
export function fieldOfServerError(field: string | null): keyof KeySettingsValues | "name" | "role" | null {
  const f = (field ?? "").replace(/^input\./, "");
  switch (f) {
    case "weight":
      return "weight";
    case "tokens_per_day":
    case "tokensPerDay":
      return "tokensPerDay";
    case "tokens_per_month":
    case "tokensPerMonth":
      return "tokensPerMonth";
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
