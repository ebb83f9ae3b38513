import { useQuery, useSubscription } from "urql";
import { Link } from "react-router";
import { graphql } from "../../gql";
import type { CallerStatsFieldsFragment } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { isDown, useConnection } from "../../api/connection";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { Empty, ErrorState, Loading } from "../../components/states";
import { formatNumber, formatPercent, formatRelative } from "../../lib/format";

graphql(`
  fragment CallerStatsFields on DashboardStats {
    running
    queueDepth
    generatedAt
    perCaller {
      caller
      apiKeyID
      weight
      running
      queued
      share
      fairShare
    }
  }
`);

const callersQuery = graphql(`
  query CallersStats {
    dashboardStats {
      ...CallerStatsFields
    }
  }
`);

const callersLive = graphql(`
  subscription CallersStatsLive {
    dashboardStatsUpdated {
      ...CallerStatsFields
    }
  }
`);

/** CallersPage: who has tasks running and waiting, and their share of the slots (docs/fairness.md). */
export function CallersPage() {
  const [q, refetch] = useQuery({ query: callersQuery });
  const [live] = useSubscription({ query: callersLive });
  const down = isDown(useConnection());
  useRefetchOnReconnect(() => refetch({ requestPolicy: "network-only" }));
  const stats: CallerStatsFieldsFragment | undefined = live.data?.dashboardStatsUpdated ?? q.data?.dashboardStats;
  return (
    <div className="page">
      <div className="page-head">
        <h1>Callers</h1>
        {stats && (
          <p className="muted" aria-live="off">
            Updated {formatRelative(stats.generatedAt)} {down ? "· paused" : live.data ? "· live" : ""}
          </p>
        )}
      </div>
      <p className="muted">
        Inside one priority of one model, free slots go to callers in turn, in proportion to their API key's weight. <em>Share</em> is a caller's part of the
        tasks running now; <em>fair share</em> is what its weight claims against the other callers listed while they compete for the same model.
      </p>
      {!stats && q.fetching && <Loading what="callers" />}
      {!stats && !q.fetching && q.error && (
        <ErrorState message={apiError(q.error)?.message ?? "Could not load callers"} onRetry={() => refetch({ requestPolicy: "network-only" })} />
      )}
      {stats && (
        <section className="card" aria-labelledby="callers-h">
          <h2 id="callers-h">
            Callers with work ({formatNumber(stats.running)} running, {formatNumber(stats.queueDepth)} queued in all)
          </h2>
          {stats.perCaller.length === 0 ? (
            <Empty>No caller has tasks running or waiting.</Empty>
          ) : (
            <div className="table-wrap">
              <table data-testid="callers-table">
                <thead>
                  <tr>
                    <th scope="col">Caller</th>
                    <th scope="col">Weight</th>
                    <th scope="col">Running</th>
                    <th scope="col">Queued</th>
                    <th scope="col">Share</th>
                    <th scope="col">Fair share</th>
                  </tr>
                </thead>
                <tbody>
                  {stats.perCaller.map((c) => (
                    <tr key={`${c.caller}/${c.apiKeyID ?? ""}`} data-caller={c.caller} data-running={c.running} data-queued={c.queued}>
                      <td>
                        {c.caller}
                        {c.apiKeyID != null && <span className="muted"> · key {c.apiKeyID}</span>}
                      </td>
                      <td>{c.weight}</td>
                      <td>{formatNumber(c.running)}</td>
                      <td>{formatNumber(c.queued)}</td>
                      <td>
                        <meter min={0} max={1} value={c.share} aria-label={`${c.caller} share of running tasks`} /> {formatPercent(c.share)}
                      </td>
                      <td data-testid="fair-share">{formatPercent(c.fairShare)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <p className="muted">
            Weights and token budgets are set per API key on the <Link to="/system">System</Link> page.
          </p>
        </section>
      )}
    </div>
  );
}
