import { describe, expect, it } from "vitest";
import { buildTaskRequest, emptyTaskForm, formKeyForServerField, taskTypeFields, validateTaskForm, type TaskFormValues } from "./taskForm";

const base = (over: Partial<TaskFormValues> = {}): TaskFormValues => ({ ...emptyTaskForm("42"), input: "hello", ...over });

describe("validateTaskForm", () => {
  it("accepts a plain text-generation task", () => {
    expect(validateTaskForm(base())).toEqual({});
  });
  it("needs a model and an input", () => {
    expect(validateTaskForm(base({ modelId: "", input: "  " }))).toEqual({ modelId: "Choose a model", input: "Input is required" });
  });
  it("needs a target language for translation only", () => {
    expect(validateTaskForm(base({ type: "TRANSLATION" })).targetLanguage).toBe("Target language is required for translation");
    expect(validateTaskForm(base({ type: "TRANSLATION", targetLanguage: "French" }))).toEqual({});
    expect(validateTaskForm(base({ type: "SUMMARIZATION" }))).toEqual({});
  });
  it("checks numbers against the server's limits", () => {
    const e = validateTaskForm(base({ maxRetries: "101", timeoutSeconds: "0", maxTokens: "2.5", temperature: "3", delaySeconds: "-1" }));
    expect(Object.keys(e).sort()).toEqual(["delaySeconds", "maxRetries", "maxTokens", "temperature", "timeoutSeconds"]);
    expect(validateTaskForm(base({ delaySeconds: "2592001" })).delaySeconds).toMatch(/30 days/);
  });
  it("ignores generation settings that an embedding task does not have", () => {
    expect(validateTaskForm(base({ type: "EMBEDDING", temperature: "99" }))).toEqual({});
  });
  it("checks custom messages and parameters", () => {
    expect(validateTaskForm(base({ type: "CUSTOM", messages: "[]" })).messages).toMatch(/non-empty array/);
    expect(validateTaskForm(base({ type: "CUSTOM", messages: '[{"role":"robot","content":"x"}]' })).messages).toBe("Message 1: role must be system, user or assistant");
    expect(validateTaskForm(base({ type: "CUSTOM", messages: '[{"role":"user","content":""}]' })).messages).toBe("Message 1: content must be a non-empty string");
    expect(validateTaskForm(base({ type: "CUSTOM", parameters: "[1]" })).parameters).toBe("Parameters must be a JSON object");
    expect(validateTaskForm(base({ type: "CUSTOM", messages: '[{"role":"user","content":"hi"}]', parameters: '{"top_p":0.9}' }))).toEqual({});
  });
});

describe("buildTaskRequest", () => {
  it("sends only the chosen type's parameters", () => {
    const v = base({ type: "TRANSLATION", targetLanguage: " French ", sourceLanguage: "", length: "short", priority: "3", maxTokens: "64" });
    expect(buildTaskRequest(v)).toEqual({
      modelID: "42",
      type: "TRANSLATION",
      input: "hello",
      priority: 3,
      params: { target_language: "French", max_tokens: 64 },
      maxRetries: null,
      timeoutSeconds: null,
      delaySeconds: null,
    });
  });
  it("sends no params when there are none", () => {
    expect(buildTaskRequest(base({ type: "EMBEDDING", systemPrompt: "ignored" })).params).toBeNull();
  });
  it("parses custom JSON fields", () => {
    const r = buildTaskRequest(base({ type: "CUSTOM", messages: '[{"role":"user","content":"hi"}]', parameters: '{"top_p":0.9}', maxRetries: "0", timeoutSeconds: "30" }));
    expect(r.params).toEqual({ messages: [{ role: "user", content: "hi" }], parameters: { top_p: 0.9 } });
    expect([r.maxRetries, r.timeoutSeconds]).toEqual([0, 30]);
    expect(buildTaskRequest(base({ delaySeconds: "90" })).delaySeconds).toBe(90);
  });
  it("maps the server's field names to form inputs", () => {
    expect(formKeyForServerField("params.target_language")).toBe("targetLanguage");
    expect(formKeyForServerField("input.params.messages[2].role")).toBe("messages");
    expect(formKeyForServerField("model_id")).toBe("modelId");
    expect(formKeyForServerField("delay_seconds")).toBe("delaySeconds");
    expect(formKeyForServerField("nonsense")).toBeNull();
    expect(taskTypeFields("EMBEDDING")).toEqual([]);
  });
});
