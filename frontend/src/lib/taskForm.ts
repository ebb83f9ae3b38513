// The create-task form: fields per task type, validation, and the request
// it becomes. Mirrors the server's rules (scheduler.validateParams) so
// mistakes show before a round trip; the server stays the authority.

import { parseNumber, type FormErrors } from "./modelForm";

export type TaskTypeName = "TEXT_GENERATION" | "TRANSLATION" | "SUMMARIZATION" | "EMBEDDING" | "CUSTOM";

export const taskTypes: readonly TaskTypeName[] = ["TEXT_GENERATION", "TRANSLATION", "SUMMARIZATION", "EMBEDDING", "CUSTOM"];

export interface TaskFormValues {
  modelId: string;
  type: TaskTypeName;
  input: string;
  priority: "1" | "2" | "3";
  maxRetries: string;
  timeoutSeconds: string;
  delaySeconds: string;
  maxTokens: string;
  temperature: string;
  systemPrompt: string;
  targetLanguage: string;
  sourceLanguage: string;
  length: string;
  messages: string;
  parameters: string;
}

export function emptyTaskForm(modelId = ""): TaskFormValues {
  return {
    modelId, type: "TEXT_GENERATION", input: "", priority: "2", maxRetries: "", timeoutSeconds: "", delaySeconds: "",
    maxTokens: "", temperature: "", systemPrompt: "", targetLanguage: "", sourceLanguage: "",
    length: "", messages: "", parameters: "",
  };
}

/** Which type-specific inputs a task type shows. */
export function taskTypeFields(t: TaskTypeName): ReadonlyArray<keyof TaskFormValues> {
  switch (t) {
    case "TRANSLATION":
      return ["targetLanguage", "sourceLanguage", "systemPrompt", "maxTokens", "temperature"];
    case "SUMMARIZATION":
      return ["length", "systemPrompt", "maxTokens", "temperature"];
    case "EMBEDDING":
      return [];
    case "CUSTOM":
      return ["messages", "parameters", "systemPrompt", "maxTokens", "temperature"];
    default:
      return ["systemPrompt", "maxTokens", "temperature"];
  }
}

const maxInputBytes = 1_000_000;

function intIn(s: string, min: number, max: number): boolean {
  const n = parseNumber(s);
  return n != null && Number.isInteger(n) && n >= min && n <= max;
}

/** validateTaskForm returns one message per invalid input (empty when valid). */
export function validateTaskForm(v: TaskFormValues): FormErrors {
  const e: FormErrors = {};
  if (!v.modelId) e.modelId = "Choose a model";
  if (!v.input.trim()) e.input = "Input is required";
  else if (new TextEncoder().encode(v.input).length > maxInputBytes) e.input = "Input must be at most 1 MB";
  if (!["1", "2", "3"].includes(v.priority)) e.priority = "Priority must be high, medium or low";
  if (v.maxRetries.trim() && !intIn(v.maxRetries, 0, 100)) e.maxRetries = "Max retries must be a whole number from 0 to 100";
  if (v.timeoutSeconds.trim() && !intIn(v.timeoutSeconds, 1, 86_400)) e.timeoutSeconds = "Timeout must be 1 to 86400 seconds";
  if (v.delaySeconds.trim() && !intIn(v.delaySeconds, 0, 30 * 86_400)) e.delaySeconds = "Delay must be 0 to 2592000 seconds (30 days)";
  const shown = new Set(taskTypeFields(v.type));
  if (shown.has("maxTokens") && v.maxTokens.trim() && !intIn(v.maxTokens, 1, 1_000_000)) e.maxTokens = "Max tokens must be a whole number from 1 to 1000000";
  if (shown.has("temperature") && v.temperature.trim()) {
    const t = parseNumber(v.temperature);
    if (t == null || t < 0 || t > 2) e.temperature = "Temperature must be between 0 and 2";
  }
  if (v.type === "TRANSLATION" && !v.targetLanguage.trim()) e.targetLanguage = "Target language is required for translation";
  if (v.type === "CUSTOM") {
    if (v.messages.trim()) {
      const err = messagesError(v.messages);
      if (err) e.messages = err;
    }
    if (v.parameters.trim()) {
      let p: unknown;
      try {
        p = JSON.parse(v.parameters);
      } catch {
        p = undefined;
      }
      if (p === null || typeof p !== "object" || Array.isArray(p)) e.parameters = "Parameters must be a JSON object";
    }
  }
  return e;
}

function messagesError(text: string): string | undefined {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return "Messages must be valid JSON";
  }
  if (!Array.isArray(m) || m.length === 0) return "Messages must be a non-empty array of {role, content}";
  for (let i = 0; i < m.length; i++) {
    const x: unknown = m[i];
    if (x === null || typeof x !== "object") return `Message ${i + 1} must be an object`;
    const { role, content } = x as { role?: unknown; content?: unknown };
    if (role !== "system" && role !== "user" && role !== "assistant") return `Message ${i + 1}: role must be system, user or assistant`;
    if (typeof content !== "string" || !content) return `Message ${i + 1}: content must be a non-empty string`;
  }
  return undefined;
}

export interface NewTaskRequest {
  modelID: string;
  type: TaskTypeName;
  input: string;
  priority: number;
  params: Record<string, unknown> | null;
  maxRetries: number | null;
  timeoutSeconds: number | null;
  delaySeconds: number | null;
}

/** buildTaskRequest turns valid form values into the create request; only the current type's parameters are sent. */
export function buildTaskRequest(v: TaskFormValues): NewTaskRequest {
  const params: Record<string, unknown> = {};
  const shown = new Set(taskTypeFields(v.type));
  const str = (k: string, s: string) => {
    if (s.trim()) params[k] = s.trim();
  };
  if (shown.has("systemPrompt")) str("system_prompt", v.systemPrompt);
  if (shown.has("maxTokens") && v.maxTokens.trim()) params.max_tokens = parseNumber(v.maxTokens);
  if (shown.has("temperature") && v.temperature.trim()) params.temperature = parseNumber(v.temperature);
  if (v.type === "TRANSLATION") {
    str("target_language", v.targetLanguage);
    str("source_language", v.sourceLanguage);
  }
  if (v.type === "SUMMARIZATION") str("length", v.length);
  if (v.type === "CUSTOM") {
    if (v.messages.trim()) params.messages = JSON.parse(v.messages) as unknown;
    if (v.parameters.trim()) params.parameters = JSON.parse(v.parameters) as unknown;
  }
  return {
    modelID: v.modelId,
    type: v.type,
    input: v.input,
    priority: Number(v.priority),
    params: Object.keys(params).length ? params : null,
    maxRetries: v.maxRetries.trim() ? parseNumber(v.maxRetries) : null,
    timeoutSeconds: v.timeoutSeconds.trim() ? parseNumber(v.timeoutSeconds) : null,
    delaySeconds: v.delaySeconds.trim() ? parseNumber(v.delaySeconds) : null,
  };
}

const serverFields: Record<string, keyof TaskFormValues> = {
  model_id: "modelId",
  modelid: "modelId",
  type: "type",
  input: "input",
  priority: "priority",
  max_retries: "maxRetries",
  maxretries: "maxRetries",
  timeout_seconds: "timeoutSeconds",
  timeoutseconds: "timeoutSeconds",
  delay_seconds: "delaySeconds",
  delayseconds: "delaySeconds",
  run_at: "delaySeconds",
  "params.max_tokens": "maxTokens",
  "params.temperature": "temperature",
  "params.system_prompt": "systemPrompt",
  "params.target_language": "targetLanguage",
  "params.source_language": "sourceLanguage",
  "params.length": "length",
  "params.messages": "messages",
  "params.parameters": "parameters",
};

/** formKeyForServerField maps the field a server error names (e.g. "params.target_language", "input.modelID") to the form input. */
export function formKeyForServerField(field: string | null | undefined): keyof TaskFormValues | null {
  if (!field) return null;
  let f = field.toLowerCase().replace(/^input\./, "");
  if (f.startsWith("params.messages[")) f = "params.messages";
  return serverFields[f] ?? null;
}
