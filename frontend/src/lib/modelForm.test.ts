import { describe, expect, it } from "vitest";
import { buildModelConfig, configToValues, emptyModelForm, modelFields, modelTypes, parseHeaders, validateModelForm, type ModelFormValues } from "./modelForm";

function form(type: ModelFormValues["type"], config: Record<string, string>, extra: Partial<ModelFormValues> = {}): ModelFormValues {
  return { ...emptyModelForm(type), name: "m", ...extra, config: { ...emptyModelForm(type).config, ...config } };
}

describe("model fields per type", () => {
  it("match each provider's config keys (docs/providers.md)", () => {
    const keys = (t: ModelFormValues["type"]) => modelFields[t].map((f) => f.key);
    expect(keys("OPENAI")).toEqual(["api_key", "base_url", "model", "max_tokens", "temperature"]);
    expect(keys("LOCAL")).toEqual(["host", "port", "model_path", "max_tokens", "temperature"]);
    expect(keys("CUSTOM")).toEqual(["url", "method", "headers", "request_template", "response_path"]);
    expect(keys("SIMULATOR")).toEqual(["latency_ms", "tokens_per_second", "output_tokens", "fail_rate", "fail_first_n", "fail_kind"]);
    expect(modelTypes).toHaveLength(4);
  });
});

describe("validateModelForm", () => {
  it("accepts each type's defaults once required fields are filled", () => {
    expect(validateModelForm(form("SIMULATOR", {}), false)).toEqual({});
    expect(validateModelForm(form("OPENAI", { api_key: "sk-123", model: "gpt-4o" }), false)).toEqual({});
    expect(validateModelForm(form("LOCAL", { model_path: "/models/llama" }), false)).toEqual({});
    expect(validateModelForm(form("CUSTOM", { url: "https://x.test/gen", request_template: '{"q":"{{input}}"}', response_path: "a.b" }), false)).toEqual({});
    expect(validateModelForm(form("CUSTOM", { url: "https://x.test/gen", method: "GET", response_path: "a" }), false)).toEqual({});
  });

  it.each([
    ["OPENAI", { model: "gpt-4o" }, "config.api_key", "API key is required for api.openai.com"],
    ["OPENAI", { api_key: "k" }, "config.model", "Model is required"],
    ["OPENAI", { api_key: "k", model: "m", base_url: "ftp://x" }, "config.base_url", "Base URL must start with http:// or https://"],
    ["OPENAI", { api_key: "k", model: "m", temperature: "2.5" }, "config.temperature", "Temperature must be at most 2"],
    ["OPENAI", { api_key: "k", model: "m", max_tokens: "1.5" }, "config.max_tokens", "Max tokens must be a whole number"],
    ["LOCAL", { model_path: "/m", port: "70000" }, "config.port", "Port must be at most 65535"],
    ["LOCAL", { model_path: "/m", port: "eighty" }, "config.port", "Port must be a number"],
    ["CUSTOM", { url: "not a url" }, "config.url", "URL must be a URL like https://host/path"],
    ["CUSTOM", { url: "https://x.test", request_template: "{}" }, "config.response_path", "Response path is required"],
    ["CUSTOM", { url: "https://x.test", method: "PUT", response_path: "a" }, "config.request_template", "A request template is required for PUT"],
    ["CUSTOM", { url: "https://x.test", request_template: "{oops" }, "config.request_template", "Request template (JSON) is not valid JSON"],
    ["CUSTOM", { url: "https://x.test", headers: "no colon here" }, "config.headers", 'Headers: line 1: expected "Name: value"'],
    ["SIMULATOR", { fail_rate: "1.5" }, "config.fail_rate", "Failure rate (0–1) must be at most 1"],
    ["SIMULATOR", { latency_ms: "-1" }, "config.latency_ms", "Latency (ms) must be at least 0"],
    ["SIMULATOR", { fail_kind: "sometimes" }, "config.fail_kind", "Failure kind must be one of retryable, permanent"],
  ] as const)("%s %j -> %s", (type, config, key, msg) => {
    expect(validateModelForm(form(type, config), false)[key]).toBe(msg);
  });

  it("checks name and max workers", () => {
    const e = validateModelForm(form("SIMULATOR", {}, { name: " ", maxWorkers: "0" }), false);
    expect(e.name).toBe("Name is required");
    expect(e.maxWorkers).toMatch(/from 1 to 1000/);
  });

  it("lets the API key stay blank on edit (keeps the stored one) and for a local server", () => {
    const v = form("OPENAI", { model: "gpt-4o" });
    expect(validateModelForm(v, false)["config.api_key"]).toBeDefined();
    expect(validateModelForm(v, true)["config.api_key"]).toBeUndefined();
    expect(validateModelForm(form("OPENAI", { model: "llama3", base_url: "http://localhost:11434/v1" }), false)).toEqual({});
  });
});

describe("buildModelConfig and configToValues", () => {
  it("sends numbers as numbers and omits blanks", () => {
    expect(buildModelConfig("SIMULATOR", { latency_ms: "250", tokens_per_second: "12.5", output_tokens: "", fail_rate: "0", fail_first_n: "1", fail_kind: "permanent" })).toEqual({
      latency_ms: 250,
      tokens_per_second: 12.5,
      fail_rate: 0,
      fail_first_n: 1,
      fail_kind: "permanent",
    });
  });

  it("parses custom headers and the JSON template", () => {
    const cfg = buildModelConfig("CUSTOM", { url: "https://x.test", method: "POST", headers: "Authorization: Bearer abc\nX-Team: ml", request_template: '{"prompt":"{{input}}"}', response_path: "out.text" });
    expect(cfg).toEqual({ url: "https://x.test", method: "POST", headers: { Authorization: "Bearer abc", "X-Team": "ml" }, request_template: { prompt: "{{input}}" }, response_path: "out.text" });
  });

  it("never puts a stored secret in an input, and sends the mask back when left blank", () => {
    const stored = { api_key: "sk-...abcd", model: "gpt-4o", base_url: "https://api.openai.com/v1", temperature: 0.7 };
    const { values, secretHints } = configToValues("OPENAI", stored);
    expect(values.api_key).toBe("");
    expect(secretHints.api_key).toBe("sk-...abcd");
    expect(values.temperature).toBe("0.7");
    expect(values.max_tokens).toBe("");
    // Unchanged: the masked value goes back, which the server reads as "keep".
    expect(buildModelConfig("OPENAI", values, stored).api_key).toBe("sk-...abcd");
    // Changed: the new key goes out.
    expect(buildModelConfig("OPENAI", { ...values, api_key: "sk-new-key" }, stored).api_key).toBe("sk-new-key");
  });

  it("round-trips a custom config", () => {
    const stored = { url: "https://x.test", method: "PUT", headers: { Authorization: "Bea...abcd" }, request_template: { a: 1 }, response_path: "x" };
    const { values } = configToValues("CUSTOM", stored);
    expect(values.headers).toBe("Authorization: Bea...abcd");
    expect(buildModelConfig("CUSTOM", values, stored)).toEqual(stored);
  });

  it("parseHeaders names the bad line", () => {
    expect(parseHeaders("A: 1\n\nbad").error).toBe('line 3: expected "Name: value"');
    expect(parseHeaders("X-Y:  z:w ").headers).toEqual({ "X-Y": "z:w" });
  });
});
