import { enumLabel } from "../lib/format";

/** StatusBadge shows a task, attempt or model status with its colour. */
export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`badge badge-${status.toLowerCase()}`} data-status={status}>
      {enumLabel(status)}
    </span>
  );
}
