import { useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery, useSubscription } from "urql";
import { graphql } from "../../gql";
import type { ModelListFieldsFragment } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { Empty, ErrorState, Loading } from "../../components/states";
import { StatusBadge } from "../../components/StatusBadge";
import { enumLabel, formatRelative } from "../../lib/format";
import { idNumber } from "../../lib/ids";

graphql(`
  fragment ModelListFields on Model {
    id
    name
    type
    status
    maxWorkers
    description
    config
    updatedAt
    deletedAt
  }
`);

const modelsQuery = graphql(`
  query ModelList {
    models(first: 100, orderBy: [{ field: NAME, direction: ASC }]) {
      edges {
        node {
          ...ModelListFields
        }
      }
    }
  }
`);

const modelLoad = graphql(`
  subscription ModelLoad {
    dashboardStatsUpdated {
      perModel {
        modelID
        running
        queued
      }
    }
  }
`);

const setStatusMutation = graphql(`
  mutation SetModelStatus($id: ID!, $status: ModelStatus!) {
    setModelStatus(id: $id, status: $status) {
      ...ModelListFields
    }
  }
`);

const deleteMutation = graphql(`
  mutation DeleteModel($id: ID!) {
    deleteModel(id: $id) {
      ...ModelListFields
    }
  }
`);

export function ModelsPage() {
  const [q, refetch] = useQuery({ query: modelsQuery });
  const [load] = useSubscription({ query: modelLoad });
  const [showDeleted, setShowDeleted] = useState(false);
  useRefetchOnReconnect(() => refetch({ requestPolicy: "network-only" }));

  const all = (q.data?.models.edges ?? []).flatMap((e) => (e?.node ? [e.node] : []));
  const models = all.filter((m) => showDeleted || !m.deletedAt);
  const loadByModel = new Map((load.data?.dashboardStatsUpdated.perModel ?? []).map((p) => [p.modelID, p]));
  const deletedCount = all.filter((m) => m.deletedAt).length;

  return (
    <div className="page">
      <div className="page-head">
        <h1>Models</h1>
        <Link className="btn btn-primary" to="/models/new">
          New model
        </Link>
      </div>
      {!q.data && q.fetching && <Loading what="models" />}
      {q.error && !q.fetching && <ErrorState message={apiError(q.error)?.message ?? "Could not load models"} onRetry={() => refetch({ requestPolicy: "network-only" })} />}
      {q.data && models.length === 0 && (
        <Empty>
          No models registered. <Link to="/models/new">Register one</Link> to start running tasks.
        </Empty>
      )}
      {models.length > 0 && (
        <div className="model-grid">
          {models.map((m) => (
            <ModelCard key={m.id} m={m} running={loadByModel.get(m.id)?.running} queued={loadByModel.get(m.id)?.queued} />
          ))}
        </div>
      )}
      {deletedCount > 0 && (
        <label className="check">
          <input type="checkbox" checked={showDeleted} onChange={(e) => setShowDeleted(e.target.checked)} /> Show {deletedCount} deleted model{deletedCount === 1 ? "" : "s"}
        </label>
      )}
    </div>
  );
}

function ModelCard({ m, running, queued }: { m: ModelListFieldsFragment; running?: number; queued?: number }) {
  const [statusState, setStatus] = useMutation(setStatusMutation);
  const [deleteState, del] = useMutation(deleteMutation);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const online = m.status === "ONLINE";
  const deleted = Boolean(m.deletedAt);

  const toggle = async () => {
    setError(null);
    const r = await setStatus({ id: m.id, status: online ? "OFFLINE" : "ONLINE" });
    if (r.error) setError(apiError(r.error)?.message ?? "Could not change the status");
  };
  const remove = async () => {
    setError(null);
    const r = await del({ id: m.id });
    setConfirming(false);
    if (r.error) setError(apiError(r.error)?.message ?? "Could not delete the model");
  };

  return (
    <article className={`card model-card ${deleted ? "is-deleted" : ""}`} aria-labelledby={`model-${idNumber(m.id)}-h`} data-model={m.name}>
      <header className="card-head">
        <h2 id={`model-${idNumber(m.id)}-h`}>{m.name}</h2>
        {deleted ? <span className="badge badge-cancelled">deleted</span> : <StatusBadge status={m.status} />}
      </header>
      <p className="muted">
        {enumLabel(m.type)}
        {m.description ? ` · ${m.description}` : m.type === "SIMULATOR" ? " — built-in simulator, no real LLM" : ""}
      </p>
      <dl className="facts facts-inline">
        <div>
          <dt>Running</dt>
          <dd data-testid="running">{running ?? "—"}</dd>
        </div>
        <div>
          <dt>Queued</dt>
          <dd data-testid="queued">{queued ?? "—"}</dd>
        </div>
        <div>
          <dt>Max workers</dt>
          <dd>{m.maxWorkers}</dd>
        </div>
        <div>
          <dt>Changed</dt>
          <dd>{formatRelative(m.updatedAt)}</dd>
        </div>
      </dl>
      <ConfigSummary config={m.config} />
      {!deleted && (
        <div className="card-actions">
          <button
            type="button"
            role="switch"
            aria-checked={online}
            className={`switch ${online ? "on" : ""}`}
            disabled={statusState.fetching}
            onClick={() => void toggle()}
            aria-label={`${m.name} online`}
          >
            <span className="switch-knob" aria-hidden="true" /> {online ? "Online" : "Offline"}
          </button>
          <Link className="btn" to={`/models/${idNumber(m.id)}/edit`}>
            Edit
          </Link>
          <Link className="btn" to={`/tasks?model=${idNumber(m.id)}`}>
            Tasks
          </Link>
          {confirming ? (
            <span className="confirm" role="group" aria-label="Confirm delete">
              Delete {m.name}?
              <button type="button" className="btn-danger" disabled={deleteState.fetching} onClick={() => void remove()}>
                Yes, delete
              </button>
              <button type="button" onClick={() => setConfirming(false)} autoFocus>
                Keep
              </button>
            </span>
          ) : (
            <button type="button" className="btn-danger-outline" onClick={() => setConfirming(true)}>
              Delete
            </button>
          )}
        </div>
      )}
      {error && (
        <p className="inline-error" role="alert">
          {error}
        </p>
      )}
    </article>
  );
}

/** ConfigSummary lists a model's config as the API returned it (credentials masked by the server). */
function ConfigSummary({ config }: { config: Record<string, unknown> }) {
  const entries = Object.entries(config).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return null;
  return (
    <details className="config">
      <summary>Configuration</summary>
      <dl className="facts">
        {entries.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>
              <code>{typeof v === "string" ? v : JSON.stringify(v)}</code>
            </dd>
          </div>
        ))}
      </dl>
    </details>
  );
}
