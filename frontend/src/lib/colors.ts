// Status colours, shared by badges (styles.css uses the same values) and charts.
export const statusColors = {
  PENDING: "#d99a00",
  RUNNING: "#2f6fe4",
  COMPLETED: "#1f9d55",
  FAILED: "#d64545",
  CANCELLED: "#8a8f98",
} as const;
