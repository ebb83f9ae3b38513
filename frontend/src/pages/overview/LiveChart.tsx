import { Bar, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { formatClock } from "../../lib/format";
import type { LiveSeries } from "../../lib/liveSeries";
import { statusColors } from "../../lib/colors";

/** LiveChart shows task transitions per 10 s and the sampled queue depth over the last minutes. */
export function LiveChart({ series }: { series: LiveSeries }) {
  const data = series.buckets.map((b) => ({ ...b, time: formatClock(b.start) }));
  const total = series.buckets.reduce((n, b) => n + b.completed + b.failed + b.created + b.started, 0);
  return (
    <div className="chart" role="img" aria-label={`Live chart: ${total} task transitions in the last ${series.windowMs / 60000} minutes`} data-testid="live-chart">
      <ResponsiveContainer width="100%" height={260}>
        <ComposedChart data={data} margin={{ top: 8, right: 8, bottom: 0, left: -16 }}>
          <CartesianGrid strokeDasharray="3 3" vertical={false} />
          <XAxis dataKey="time" fontSize={12} minTickGap={24} />
          <YAxis allowDecimals={false} fontSize={12} />
          <Tooltip />
          <Legend wrapperStyle={{ fontSize: 12 }} />
          <Bar dataKey="created" name="submitted" fill={statusColors.PENDING} isAnimationActive={false} />
          <Bar dataKey="completed" name="completed" stackId="done" fill={statusColors.COMPLETED} isAnimationActive={false} />
          <Bar dataKey="failed" name="failed" stackId="done" fill={statusColors.FAILED} isAnimationActive={false} />
          <Line dataKey="queued" name="queue depth" type="stepAfter" stroke="#7a5af8" dot={false} connectNulls isAnimationActive={false} />
          <Line dataKey="running" name="running" type="stepAfter" stroke={statusColors.RUNNING} dot={false} connectNulls isAnimationActive={false} />
        </ComposedChart>
      </ResponsiveContainer>
    </div>
  );
}
