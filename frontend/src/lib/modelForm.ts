// Model forms: the config fields of each model type, their validation, and
// the conversion between form values (strings, as inputs hold them) and the
// config object the API stores. Secrets are entered but never shown back:
// the API returns them masked, and a secret left blank on edit sends the
// masked value back, which the server reads as "keep the stored one".

export type ModelTypeName = "OPENAI" | "LOCAL" | "CUSTOM" | "SIMULATOR";

export const modelTypes: readonly ModelTypeName[] = ["OPENAI", "LOCAL", "CUSTOM", "SIMULATOR"];

export type FieldKind = "text" | "secret" | "url" | "int" | "number" | "select" | "json" | "headers";

export interface FieldSpec {
  key: string;
  label: string;
  kind: FieldKind;
  required?: boolean;
  min?: number;
  max?: number;
  options?: readonly string[];
  placeholder?: string;
  help?: string;
  defaultValue?: string;
}

const maxTokens: FieldSpec = { key: "max_tokens", label: "Max tokens", kind: "int", min: 1, max: 1_000_000, placeholder: "2048" };
const temperature: FieldSpec = { key: "temperature", label: "Temperature", kind: "number", min: 0, max: 2, placeholder: "0.7" };

export const modelFields: Record<ModelTypeName, readonly FieldSpec[]> = {
  OPENAI: [
    { key: "api_key", label: "API key", kind: "secret", help: "Required by api.openai.com; optional for a local OpenAI-compatible server. Stored encrypted, shown masked afterwards." },
    { key: "base_url", label: "Base URL", kind: "url", defaultValue: "https://api.openai.com/v1", help: "Any OpenAI-compatible API (OpenAI, vLLM, Ollama, llama.cpp, LM Studio)." },
    { key: "model", label: "Model", kind: "text", required: true, placeholder: "gpt-3.5-turbo" },
    maxTokens,
    temperature,
  ],
  LOCAL: [
    { key: "host", label: "Host", kind: "text", required: true, defaultValue: "localhost" },
    { key: "port", label: "Port", kind: "int", required: true, min: 1, max: 65535, defaultValue: "8000" },
    { key: "model_path", label: "Model path", kind: "text", required: true, placeholder: "/models/llama-2-7b-chat" },
    maxTokens,
    temperature,
  ],
  CUSTOM: [
    { key: "url", label: "URL", kind: "url", required: true, placeholder: "https://llm.example.com/generate" },
    { key: "method", label: "Method", kind: "select", options: ["POST", "PUT", "PATCH", "GET"], defaultValue: "POST" },
    { key: "headers", label: "Headers", kind: "headers", placeholder: "Authorization: Bearer …", help: "One \"Name: value\" per line. Values are secrets: shown masked afterwards." },
    { key: "request_template", label: "Request template (JSON)", kind: "json", placeholder: '{"prompt": "{{input}}", "max_tokens": "{{max_tokens}}"}', help: "The request body (required except for GET); {{input}}, {{messages}}, {{max_tokens}}, {{params.NAME}}… are filled in per task." },
    { key: "response_path", label: "Response path", kind: "text", required: true, placeholder: "choices.0.message.content", help: "Where the answer is in the JSON response (dot path)." },
  ],
  SIMULATOR: [
    { key: "latency_ms", label: "Latency (ms)", kind: "int", min: 0, max: 600_000, defaultValue: "200", help: "Time to the first token." },
    { key: "tokens_per_second", label: "Tokens per second", kind: "number", min: 0, defaultValue: "20", help: "0 emits the whole answer at once." },
    { key: "output_tokens", label: "Output tokens", kind: "int", min: 0, max: 100_000, defaultValue: "16" },
    { key: "fail_rate", label: "Failure rate (0–1)", kind: "number", min: 0, max: 1, defaultValue: "0" },
    { key: "fail_first_n", label: "Fail first N attempts", kind: "int", min: 0, defaultValue: "0" },
    { key: "fail_kind", label: "Failure kind", kind: "select", options: ["retryable", "permanent"], defaultValue: "retryable" },
  ],
};

export interface ModelFormValues {
  name: string;
  type: ModelTypeName;
  maxWorkers: string;
  description: string;
  config: Record<string, string>;
}

export type FormErrors = Record<string, string>;

/** emptyModelForm is a create form with each field's default. */
export function emptyModelForm(type: ModelTypeName = "SIMULATOR"): ModelFormValues {
  return { name: "", type, maxWorkers: "3", description: "", config: defaultConfigValues(type) };
}

/** defaultConfigValues are the config inputs of a type with their defaults. */
export function defaultConfigValues(type: ModelTypeName): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of modelFields[type]) out[f.key] = f.defaultValue ?? "";
  return out;
}

const numberRe = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** parseNumber reads a numeric input; null when it is not a number. */
export function parseNumber(s: string): number | null {
  const t = s.trim();
  if (!numberRe.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** parseHeaders reads "Name: value" lines; errors name the bad line. */
export function parseHeaders(text: string): { headers: Record<string, string>; error?: string } {
  const headers: Record<string, string> = {};
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (!line) continue;
    const at = line.indexOf(":");
    const name = at > 0 ? line.slice(0, at).trim() : "";
    if (!name || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
      return { headers, error: `line ${i + 1}: expected "Name: value"` };
    }
    headers[name] = line.slice(at + 1).trim();
  }
  return { headers };
}

function validateField(f: FieldSpec, raw: string, editing: boolean): string | undefined {
  const v = raw.trim();
  if (!v) {
    // On edit a blank secret keeps the stored one.
    if (f.required && !(editing && f.kind === "secret")) return `${f.label} is required`;
    return undefined;
  }
  switch (f.kind) {
    case "int":
    case "number": {
      const n = parseNumber(v);
      if (n == null) return `${f.label} must be a number`;
      if (f.kind === "int" && !Number.isInteger(n)) return `${f.label} must be a whole number`;
      if (f.min != null && n < f.min) return `${f.label} must be at least ${f.min}`;
      if (f.max != null && n > f.max) return `${f.label} must be at most ${f.max}`;
      return undefined;
    }
    case "url": {
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        return `${f.label} must be a URL like https://host/path`;
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") return `${f.label} must start with http:// or https://`;
      return undefined;
    }
    case "select":
      return f.options && !f.options.includes(v) ? `${f.label} must be one of ${f.options.join(", ")}` : undefined;
    case "json":
      try {
        JSON.parse(v);
      } catch {
        return `${f.label} is not valid JSON`;
      }
      return undefined;
    case "headers": {
      const { error } = parseHeaders(v);
      return error ? `${f.label}: ${error}` : undefined;
    }
    default:
      return undefined;
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url.trim()).hostname;
  } catch {
    return "";
  }
}

/** validateModelForm returns one message per invalid input (empty when valid). Keys are "name", "maxWorkers" or "config.<key>". */
export function validateModelForm(v: ModelFormValues, editing: boolean): FormErrors {
  const errors: FormErrors = {};
  const name = v.name.trim();
  if (!name) errors.name = "Name is required";
  else if (name.length > 128) errors.name = "Name must be at most 128 characters";
  const mw = parseNumber(v.maxWorkers);
  if (mw == null || !Number.isInteger(mw) || mw < 1 || mw > 1000) errors.maxWorkers = "Max workers must be a whole number from 1 to 1000";
  for (const f of modelFields[v.type]) {
    const e = validateField(f, v.config[f.key] ?? "", editing);
    if (e) errors[`config.${f.key}`] = e;
  }
  if (v.type === "OPENAI" && !editing && !(v.config.api_key ?? "").trim() && /(^|\.)openai\.com$/i.test(hostOf(v.config.base_url || "https://api.openai.com/v1"))) {
    // On edit a blank key keeps the stored one.
    errors["config.api_key"] = "API key is required for api.openai.com";
  }
  if (v.type === "CUSTOM" && (v.config.method ?? "POST") !== "GET" && !(v.config.request_template ?? "").trim() && !errors["config.request_template"]) {
    errors["config.request_template"] = `A request template is required for ${v.config.method || "POST"}`;
  }
  return errors;
}

/**
 * buildModelConfig turns form inputs into the config object to send.
 * `stored` is the (masked) config the API returned when editing: a blank
 * secret sends its masked value back so the server keeps the stored one.
 */
export function buildModelConfig(
  type: ModelTypeName,
  values: Record<string, string>,
  stored?: Record<string, unknown> | null,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of modelFields[type]) {
    const v = (values[f.key] ?? "").trim();
    if (!v) {
      if (f.kind === "secret" && stored && stored[f.key] != null) out[f.key] = stored[f.key];
      continue;
    }
    switch (f.kind) {
      case "int":
      case "number":
        out[f.key] = parseNumber(v);
        break;
      case "json":
        out[f.key] = JSON.parse(v) as unknown;
        break;
      case "headers":
        out[f.key] = parseHeaders(v).headers;
        break;
      default:
        out[f.key] = v;
    }
  }
  return out;
}

/**
 * configToValues fills an edit form from a stored (masked) config. Secret
 * inputs start blank; their masked values are returned as hints for the
 * placeholder. Header values come back masked and are sent back as shown.
 */
export function configToValues(
  type: ModelTypeName,
  config: Record<string, unknown> | null | undefined,
): { values: Record<string, string>; secretHints: Record<string, string> } {
  const values = defaultConfigValues(type);
  const secretHints: Record<string, string> = {};
  const cfg = config ?? {};
  for (const f of modelFields[type]) {
    const v = cfg[f.key];
    if (v == null) {
      if (f.kind !== "select") values[f.key] = "";
      continue;
    }
    if (f.kind === "secret") {
      values[f.key] = "";
      secretHints[f.key] = typeof v === "string" ? v : "****";
    } else if (f.kind === "json") {
      values[f.key] = typeof v === "string" ? v : JSON.stringify(v, null, 2);
    } else if (f.kind === "headers" && typeof v === "object") {
      values[f.key] = Object.entries(v as Record<string, unknown>)
        .map(([k, hv]) => `${k}: ${String(hv)}`)
        .join("\n");
    } else {
      values[f.key] = String(v);
    }
  }
  return { values, secretHints };
}
