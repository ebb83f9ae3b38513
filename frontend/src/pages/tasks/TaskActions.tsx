import { useState } from "react";
import { useMutation, type CombinedError } from "urql";
import { apiError } from "../../api/errors";
import { cancelTaskMutation, retryTaskMutation } from "./documents";
import { idNumber } from "../../lib/ids";

/** TaskActions offers cancel (pending or running) and retry (failed or cancelled). */
export function TaskActions({ id, status, compact = false }: { id: string; status: string; compact?: boolean }) {
  const [cancelState, cancel] = useMutation(cancelTaskMutation);
  const [retryState, retry] = useMutation(retryTaskMutation);
  const [error, setError] = useState<string | null>(null);
  const canCancel = status === "PENDING" || status === "RUNNING";
  const canRetry = status === "FAILED" || status === "CANCELLED";
  const run = async (f: (v: { id: string }) => Promise<{ error?: CombinedError }>) => {
    setError(null);
    const r = await f({ id });
    if (r.error) setError(apiError(r.error)?.message ?? "The request failed");
  };
  return (
    <span className="actions">
      {canCancel && (
        <button type="button" className="btn-danger" disabled={cancelState.fetching} onClick={() => void run(cancel)} aria-label={`Cancel task ${idNumber(id)}`}>
          {cancelState.fetching ? "Cancelling…" : "Cancel"}
        </button>
      )}
      {canRetry && (
        <button type="button" disabled={retryState.fetching} onClick={() => void run(retry)} aria-label={`Retry task ${idNumber(id)}`}>
          {retryState.fetching ? "Retrying…" : "Retry"}
        </button>
      )}
      {error && (
        <span className="inline-error" role="alert">
          {compact ? "⚠ " : ""}
          {error}
        </span>
      )}
    </span>
  );
}
