// The running configuration comes from REST (GET /api/v1/system/config,
// server/systemconfig.go): the GraphQL schema has no config query.
import { apiKey } from "../../api/apiKey";

export type SystemConfig = Record<string, unknown>;

export async function fetchSystemConfig(signal?: AbortSignal): Promise<SystemConfig> {
  const key = apiKey.get();
  const res = await fetch("/api/v1/system/config", { signal, headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok) {
    const msg = (body as { error?: { message?: string } } | null)?.error?.message;
    throw new Error(msg ?? `The configuration could not be read (HTTP ${res.status})`);
  }
  const data = (body as { data?: unknown } | null)?.data;
  if (data === null || typeof data !== "object") throw new Error("The configuration response has no data");
  return data as SystemConfig;
}

/** flattenConfig lists nested settings as dotted keys, secrets last: [["server.port", "8080"], ...]. */
export function flattenConfig(cfg: SystemConfig): [string, string][] {
  const out: [string, string][] = [];
  const walk = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      const entries = Object.entries(v as Record<string, unknown>);
      if (!entries.length) out.push([prefix, "{}"]);
      for (const [k, x] of entries) walk(prefix ? `${prefix}.${k}` : k, x);
      return;
    }
    out.push([prefix, Array.isArray(v) ? v.map(String).join(", ") || "[]" : v === null || v === undefined ? "—" : String(v)]);
  };
  const { secrets, ...rest } = cfg;
  walk("", rest);
  out.sort((a, b) => a[0].localeCompare(b[0]));
  if (secrets && typeof secrets === "object") {
    for (const [k, v] of Object.entries(secrets as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b))) out.push([k, String(v)]);
  }
  return out;
}
