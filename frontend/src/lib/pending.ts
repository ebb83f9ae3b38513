// Why a pending task waits, in words. The server sends a machine-readable
// reason (scheduler.PendingReason) and a sentence; the label is the short
// form for the table.

const labels: Record<string, string> = {
  scheduled: "Scheduled",
  model_offline: "Model offline",
  model_deleted: "Model deleted",
  model_at_capacity: "Model at its worker limit",
  retry_backoff: "Waiting to retry",
  rate_limited: "Rate limited",
  waiting_for_worker: "Waiting for a worker",
  dispatching: "Being dispatched",
  not_queued: "Not in the queue",
  redis_unavailable: "Redis unavailable",
};

export function pendingReasonLabel(reason: string | null | undefined): string {
  if (!reason) return "Waiting";
  const key = reason.toLowerCase();
  return labels[key] ?? key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

/** ordinal renders a queue position: 1 -> "1st". */
export function ordinal(n: number): string {
  const mod100 = n % 100;
  if (mod100 >= 11 && mod100 <= 13) return `${n}th`;
  return `${n}${{ 1: "st", 2: "nd", 3: "rd" }[n % 10] ?? "th"}`;
}
