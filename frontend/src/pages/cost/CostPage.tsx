import { useState } from "react";
import { useQuery } from "urql";
import { graphql } from "../../gql";
import type { CostAndUsageQuery } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { useRefetchOnTaskEvents } from "../../api/useRefetchOnTaskEvents";
import { Empty, ErrorState, Loading } from "../../components/states";
import { formatDateTime, formatNumber, formatPercent } from "../../lib/format";
import { formatCost, usageRatio } from "../../lib/apiKeyForm";

const costQuery = graphql(`
  query CostAndUsage($days: Int!) {
    costReport(days: $days) {
      cost
      estimated
      byModel {
        modelID
        name
        cost
        promptTokens
        completionTokens
        attempts
        estimated
      }
      byCaller {
        name
        cost
        promptTokens
        completionTokens
        attempts
        estimated
      }
      days {
        date
        cost
        estimated
        byModel {
          name
          cost
        }
        byCaller {
          name
          cost
        }
      }
    }
    myUsage {
      name
      weight
      day {
        period
        used
        limit
        resetsAt
      }
      month {
        period
        used
        limit
        resetsAt
      }
    }
  }
`);

type Report = CostAndUsageQuery["costReport"];
type Line = Report["byModel"][number];

const dayChoices = [1, 7, 30, 90];

/** CostPage: what the attempts cost, by model, by caller and per day, and the browser key's token usage. */
export function CostPage() {
  const [days, setDays] = useState(7);
  const [q, refetch] = useQuery({ query: costQuery, variables: { days } });
  const again = () => refetch({ requestPolicy: "network-only" });
  useRefetchOnTaskEvents(again);
  useRefetchOnReconnect(again);
  const r = q.data?.costReport;
  const usage = q.data?.myUsage;
  return (
    <div className="page">
      <div className="page-head">
        <h1>Cost and usage</h1>
        <label>
          <span className="visually-hidden">Days</span>
          <select value={days} onChange={(e) => setDays(Number(e.target.value))} aria-label="Days shown">
            {dayChoices.map((d) => (
              <option key={d} value={d}>
                {d === 1 ? "today" : `last ${d} days`}
              </option>
            ))}
          </select>
        </label>
      </div>
      {!r && q.fetching && <Loading what="costs" />}
      {!r && q.error && <ErrorState message={apiError(q.error)?.message ?? "Could not load costs"} onRetry={again} />}
      {usage && (
        <section className="card" aria-labelledby="usage-h" data-testid="my-usage">
          <h2 id="usage-h">Token usage of this browser's key ({usage.name})</h2>
          <div className="dep-grid">
            {[usage.day, usage.month].map((w) => (
              <div className="dep" key={w.period}>
                <div className="dep-name">{w.period === "day" ? "Today (UTC)" : "This month"}</div>
                <div className="dep-state">
                  {formatNumber(w.used)} {w.limit ? `of ${formatNumber(w.limit)}` : "tokens (no cap)"}
                </div>
                {w.limit ? <meter min={0} max={1} value={Math.min(1, usageRatio(w.used, w.limit) ?? 0)} aria-label={`${w.period} budget used`} /> : null}
                <div className="muted">resets {formatDateTime(w.resetsAt)}</div>
              </div>
            ))}
          </div>
        </section>
      )}
      {r && (
        <>
          <section className="stat-grid" aria-label="Cost totals">
            <div className="stat" data-testid="cost-total">
              <div className="stat-label">Cost, {days === 1 ? "today" : `last ${days} days`}</div>
              <div className="stat-value">{formatCost(r.cost)}</div>
              {r.estimated && <div className="stat-hint">partly estimated (the provider reported no token counts)</div>}
            </div>
            <div className="stat">
              <div className="stat-label">Attempts</div>
              <div className="stat-value">{formatNumber(r.byModel.reduce((n, l) => n + l.attempts, 0))}</div>
            </div>
          </section>
          <div className="grid-2">
            <CostTable title="By model" lines={r.byModel} testid="cost-by-model" total={r.cost} />
            <CostTable title="By caller" lines={r.byCaller} testid="cost-by-caller" total={r.cost} />
          </div>
          <section className="card" aria-labelledby="cost-days-h">
            <h2 id="cost-days-h">Per day (UTC)</h2>
            {r.days.every((d) => d.cost === 0) ? (
              <Empty>Nothing cost anything in this period (models without prices are free).</Empty>
            ) : (
              <div className="table-wrap">
                <table data-testid="cost-by-day">
                  <thead>
                    <tr>
                      <th scope="col">Day</th>
                      <th scope="col">Cost</th>
                      <th scope="col">Models</th>
                      <th scope="col">Callers</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.days
                      .filter((d) => d.cost > 0)
                      .map((d) => (
                        <tr key={d.date}>
                          <td>{d.date}</td>
                          <td>
                            {formatCost(d.cost)}
                            {d.estimated ? " (est.)" : ""}
                          </td>
                          <td>{d.byModel.map((l) => `${l.name} ${formatCost(l.cost)}`).join(", ")}</td>
                          <td>{d.byCaller.map((l) => `${l.name} ${formatCost(l.cost)}`).join(", ")}</td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </div>
  );
}

function CostTable({ title, lines, testid, total }: { title: string; lines: Line[] | Omit<Line, "modelID">[]; testid: string; total: number }) {
  return (
    <section className="card" aria-label={title}>
      <h2>{title}</h2>
      {lines.length === 0 ? (
        <Empty>No attempts in this period.</Empty>
      ) : (
        <div className="table-wrap">
          <table data-testid={testid}>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Cost</th>
                <th scope="col">Share</th>
                <th scope="col">Tokens in / out</th>
                <th scope="col">Attempts</th>
              </tr>
            </thead>
            <tbody>
              {lines.map((l) => (
                <tr key={l.name} data-name={l.name} data-cost={l.cost}>
                  <td>{l.name}</td>
                  <td>
                    {formatCost(l.cost)}
                    {l.estimated ? " (est.)" : ""}
                  </td>
                  <td>{total > 0 ? formatPercent(l.cost / total) : "—"}</td>
                  <td>
                    {formatNumber(l.promptTokens)} / {formatNumber(l.completionTokens)}
                  </td>
                  <td>{formatNumber(l.attempts)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
