// Formatting helpers shared by every page. Pure functions: tested in
// format.test.ts.

/** formatDuration renders milliseconds for people: "850 ms", "1.2 s", "2 min 5 s", "1 h 3 min". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const totalS = Math.round(s);
  const m = Math.floor(totalS / 60);
  if (m < 60) {
    const rest = totalS % 60;
    return rest ? `${m} min ${rest} s` : `${m} min`;
  }
  const h = Math.floor(m / 60);
  const restM = m % 60;
  return restM ? `${h} h ${restM} min` : `${h} h`;
}

/** durationBetween is the time from start to end (or now when end is missing). */
export function durationBetween(
  start: string | null | undefined,
  end: string | null | undefined,
  now: number = Date.now(),
): number | null {
  if (!start) return null;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : now;
  if (Number.isNaN(a) || Number.isNaN(b)) return null;
  return Math.max(0, b - a);
}

/** formatRelative says how long ago a time was: "just now", "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "—";
  const d = Math.round((now - t) / 1000);
  if (d < 0) return `in ${formatDuration(-d * 1000)}`;
  if (d < 2) return "just now";
  if (d < 60) return `${d} s ago`;
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}

/** formatDateTime renders an ISO time as a local "2024-05-01 13:04:05". */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** formatClock renders a timestamp (ms) as "13:04:05". */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** formatPercent renders a ratio (0..1) as "97.5%"; null when there is nothing to rate. */
export function formatPercent(ratio: number | null | undefined, digits = 1): string {
  if (ratio == null || !Number.isFinite(ratio)) return "—";
  const pct = ratio * 100;
  const fixed = pct.toFixed(digits);
  return `${fixed.endsWith(".0") ? fixed.slice(0, -2) : fixed}%`;
}

/** formatNumber renders a count with thousands separators. */
export function formatNumber(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return "—";
  return Math.round(n).toLocaleString("en-US");
}

/** formatRate renders a per-minute or per-second throughput: "12.5/min". */
export function formatRate(n: number | null | undefined, unit: "s" | "min"): string {
  if (n == null || !Number.isFinite(n)) return "—";
  const v = n >= 100 ? Math.round(n).toString() : n >= 10 ? n.toFixed(1) : n.toFixed(2);
  // Drop zeros after the decimal point only: "2.50" -> "2.5", "12.0" -> "12".
  return `${v.includes(".") ? v.replace(/\.?0+$/, "") : v}/${unit}`;
}

/** enumLabel turns a GraphQL enum value into words: TEXT_GENERATION -> "text generation". */
export function enumLabel(v: string | null | undefined): string {
  if (!v) return "—";
  return v.toLowerCase().replace(/_/g, " ");
}

/** enumSlug is the REST spelling of an enum value: TEXT_GENERATION -> "text-generation". */
export function enumSlug(v: string): string {
  return v.toLowerCase().replace(/_/g, "-");
}

const priorityNames: Record<number, string> = { 1: "low", 2: "medium", 3: "high" };

/** priorityLabel names the API's priorities: 3 high, 2 medium, 1 low. */
export function priorityLabel(p: number): string {
  return priorityNames[p] ?? `priority ${p}`;
}

/** truncate shortens text for a table cell. */
export function truncate(s: string | null | undefined, max: number): string {
  if (!s) return "";
  const one = s.replace(/\s+/g, " ").trim();
  return one.length <= max ? one : `${one.slice(0, Math.max(0, max - 1))}…`;
}

/** shortDay shortens a YYYY-MM-DD day to MM-DD for chart axes. */
export function shortDay(isoDay: string): string {
  // "2024-05-01" -> "05-01"; anything else is shown as given.
  return /^\d{4}-\d{2}-\d{2}/.test(isoDay) ? isoDay.slice(5, 10) : isoDay;
}
