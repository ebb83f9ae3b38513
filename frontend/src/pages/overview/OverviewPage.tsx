import { useEffect, useReducer, useRef, useState } from "react";
import { Link } from "react-router";
import { useQuery, useSubscription } from "urql";
import { graphql } from "../../gql";
import type { DashboardStatsFieldsFragment } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useEvents } from "../../api/useEvents";
import { isDown, useConnection } from "../../api/connection";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { ErrorState, Loading, Empty } from "../../components/states";
import { StatusBadge } from "../../components/StatusBadge";
import { formatDuration, formatNumber, formatPercent, formatRate, formatRelative } from "../../lib/format";
import { liveSeriesReducer, newLiveSeries } from "../../lib/liveSeries";
import { DailyChart } from "./DailyChart";
import { LiveChart } from "./LiveChart";
import { idNumber } from "../../lib/ids";

graphql(`
  fragment DashboardStatsFields on DashboardStats {
    totalTasks
    pending
    running
    completed
    failed
    cancelled
    successRate
    throughputPerMinute
    queueDepth
    totalModels
    onlineModels
    avgDurationMs
    generatedAt
    perModel {
      modelID
      name
      status
      maxWorkers
      running
      queued
    }
  }
`);

const statsQuery = graphql(`
  query OverviewStats {
    dashboardStats {
      ...DashboardStatsFields
    }
  }
`);

const statsLive = graphql(`
  subscription OverviewStatsLive {
    dashboardStatsUpdated {
      ...DashboardStatsFields
    }
  }
`);

const eventsLive = graphql(`
  subscription OverviewTaskEvents {
    taskEvents {
      taskID
      from
      to
      at
    }
  }
`);

export function OverviewPage() {
  const [q, refetch] = useQuery({ query: statsQuery });
  const [live] = useSubscription({ query: statsLive });
  const down = isDown(useConnection());
  const [series, dispatch] = useReducer(liveSeriesReducer, Date.now(), (now) => newLiveSeries(now));

  useEvents(eventsLive, {}, (data) => {
    const ev = data.taskEvents;
    dispatch({ type: "event", at: Date.parse(ev.at), from: ev.from ?? null, to: ev.to });
  });
  useEffect(() => {
    const t = setInterval(() => dispatch({ type: "tick", now: Date.now() }), 5000);
    return () => clearInterval(t);
  }, []);
  useRefetchOnReconnect(() => refetch({ requestPolicy: "network-only" }));

  // The newest of the query and the stream.
  const stats: DashboardStatsFieldsFragment | undefined = live.data?.dashboardStatsUpdated ?? q.data?.dashboardStats;
  const lastSample = useRef<string | null>(null);
  useEffect(() => {
    if (stats && stats.generatedAt !== lastSample.current) {
      lastSample.current = stats.generatedAt;
      dispatch({ type: "sample", at: Date.now(), queued: stats.queueDepth, running: stats.running });
    }
  }, [stats]);

  return (
    <div className="page">
      <div className="page-head">
        <h1>Overview</h1>
        {stats && (
          <p className="muted" aria-live="off">
            Updated {formatRelative(stats.generatedAt)} {down ? "· paused" : live.data ? "· live" : ""}
          </p>
        )}
      </div>
      {!stats && q.fetching && <Loading what="statistics" />}
      {!stats && !q.fetching && q.error && (
        <ErrorState message={apiError(q.error)?.message ?? "Could not load statistics"} onRetry={() => refetch({ requestPolicy: "network-only" })} />
      )}
      {stats && <StatsCards stats={stats} />}
      <div className="grid-2">
        <section className="card" aria-labelledby="live-h">
          <h2 id="live-h">Last 10 minutes</h2>
          <p className="muted">Transitions per 10 s seen since this page opened, with the queue depth.</p>
          <LiveChart series={series} />
        </section>
        <DailySection />
      </div>
      {stats && <PerModel stats={stats} />}
    </div>
  );
}

function StatsCards({ stats }: { stats: DashboardStatsFieldsFragment }) {
  const finished = stats.completed + stats.failed;
  const cards: { label: string; value: string; hint?: string; status?: string }[] = [
    { label: "Total tasks", value: formatNumber(stats.totalTasks) },
    { label: "Pending", value: formatNumber(stats.pending), status: "PENDING" },
    { label: "Running", value: formatNumber(stats.running), status: "RUNNING" },
    { label: "Completed", value: formatNumber(stats.completed), status: "COMPLETED" },
    { label: "Failed", value: formatNumber(stats.failed), status: "FAILED" },
    { label: "Cancelled", value: formatNumber(stats.cancelled), status: "CANCELLED" },
    { label: "Success rate", value: finished ? formatPercent(stats.successRate) : "—", hint: "completed / (completed + failed)" },
    { label: "Throughput", value: formatRate(stats.throughputPerMinute, "min"), hint: "completed in the last minute" },
    { label: "Queue depth", value: formatNumber(stats.queueDepth), hint: "pending tasks" },
    { label: "Avg. run time", value: stats.avgDurationMs ? formatDuration(stats.avgDurationMs) : "—", hint: "tasks finished in the last hour" },
    { label: "Models online", value: `${stats.onlineModels} / ${stats.totalModels}` },
  ];
  return (
    <section aria-label="Totals" className="stat-grid">
      {cards.map((c) => (
        <div className={`stat ${c.status ? `stat-${c.status.toLowerCase()}` : ""}`} key={c.label} data-testid={`stat-${c.label.toLowerCase().replace(/[^a-z]+/g, "-")}`}>
          <div className="stat-label">
            {c.status ? (
              <Link to={`/tasks?status=${c.status}`}>{c.label}</Link>
            ) : (
              c.label
            )}
          </div>
          <div className="stat-value">{c.value}</div>
          {c.hint && <div className="stat-hint">{c.hint}</div>}
        </div>
      ))}
    </section>
  );
}

function PerModel({ stats }: { stats: DashboardStatsFieldsFragment }) {
  return (
    <section className="card" aria-labelledby="per-model-h">
      <h2 id="per-model-h">Running tasks per model</h2>
      {stats.perModel.length === 0 ? (
        <Empty>
          No models yet. <Link to="/models/new">Register one</Link>.
        </Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Status</th>
                <th scope="col">Running</th>
                <th scope="col">Queued</th>
                <th scope="col">Workers in use</th>
              </tr>
            </thead>
            <tbody>
              {stats.perModel.map((m) => (
                <tr key={m.modelID}>
                  <td>
                    <Link to={`/tasks?model=${idNumber(m.modelID)}`}>{m.name}</Link>
                  </td>
                  <td>
                    <StatusBadge status={m.status} />
                  </td>
                  <td>{m.running}</td>
                  <td>{m.queued}</td>
                  <td>
                    <meter min={0} max={m.maxWorkers} value={m.running} aria-label={`${m.name} workers in use`} /> {m.running}/{m.maxWorkers}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const perDayQuery = graphql(`
  query TasksPerDay($days: Int!) {
    taskStatsByDate(days: $days) {
      date
      total
      pending
      running
      completed
      failed
      cancelled
    }
  }
`);

const dayChoices = [7, 14, 30, 90];

function DailySection() {
  const [days, setDays] = useState(7);
  const [q, refetch] = useQuery({ query: perDayQuery, variables: { days } });
  // Keep today's bar current while tasks change: a refetch at most every
  // 3 s, and one after the last change.
  const lastFetch = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEvents(eventsLive, {}, () => {
    if (timer.current) return;
    const wait = Math.max(1000, lastFetch.current + 3000 - Date.now());
    timer.current = setTimeout(() => {
      timer.current = null;
      lastFetch.current = Date.now();
      refetch({ requestPolicy: "network-only" });
    }, wait);
  });
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );
  useRefetchOnReconnect(() => refetch({ requestPolicy: "network-only" }));
  const rows = q.data?.taskStatsByDate;
  return (
    <section className="card" aria-labelledby="daily-h">
      <div className="card-head">
        <h2 id="daily-h">Tasks per day</h2>
        <label>
          <span className="visually-hidden">Days</span>
          <select value={days} onChange={(e) => setDays(Number(e.target.value))} aria-label="Days shown">
            {dayChoices.map((d) => (
              <option key={d} value={d}>
                last {d} days
              </option>
            ))}
          </select>
        </label>
      </div>
      {!rows && q.fetching && <Loading what="daily counts" />}
      {!rows && q.error && <ErrorState message={apiError(q.error)?.message ?? "Could not load daily counts"} onRetry={() => refetch({ requestPolicy: "network-only" })} />}
      {rows && (rows.every((r) => r.total === 0) ? <Empty>No tasks in the last {days} days.</Empty> : <DailyChart rows={rows} />)}
    </section>
  );
}
