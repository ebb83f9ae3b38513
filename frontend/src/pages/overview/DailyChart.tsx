import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { shortDay } from "../../lib/format";
import { statusColors } from "../../lib/colors";

export interface DayRow {
  date: string;
  completed: number;
  failed: number;
  cancelled: number;
  pending: number;
  running: number;
}

const series: { key: keyof DayRow; name: string; color: string }[] = [
  { key: "completed", name: "completed", color: statusColors.COMPLETED },
  { key: "failed", name: "failed", color: statusColors.FAILED },
  { key: "cancelled", name: "cancelled", color: statusColors.CANCELLED },
  { key: "running", name: "running", color: statusColors.RUNNING },
  { key: "pending", name: "pending", color: statusColors.PENDING },
];

/** DailyChart stacks each day's tasks by status. */
export function DailyChart({ rows }: { rows: readonly DayRow[] }) {
  return (
    <div className="chart" role="img" aria-label={`Tasks per day for ${rows.length} days, stacked by status`}>
      <ResponsiveContainer width="100%" height={260}>
        <BarChart data={[...rows]} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} />
          <XAxis dataKey="date" tickFormatter={shortDay} fontSize={12} minTickGap={8} />
          <YAxis allowDecimals={false} fontSize={12} />
          <Tooltip />
          <Legend wrapperStyle={{ fontSize: 12 }} />
          {series.map((s) => (
            <Bar key={s.key} dataKey={s.key} name={s.name} stackId="s" fill={s.color} isAnimationActive={false} />
          ))}
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
