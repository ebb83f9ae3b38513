import { useEffect, useState, type FormEvent } from "react";
import { useQuery } from "urql";
import { graphql } from "../../gql";
import { apiError } from "../../api/errors";
import { apiKey } from "../../api/apiKey";
import { useConnection } from "../../api/connection";
import { ErrorState, Loading } from "../../components/states";
import { formatDateTime } from "../../lib/format";
import { fetchSystemConfig, flattenConfig, type SystemConfig } from "./systemConfig";
import { ApiKeysSection } from "./ApiKeysSection";

const healthQuery = graphql(`
  query SystemHealth {
    systemHealth {
      status
      mode
      version
      time
      database {
        ok
        latencyMs
        error
      }
      redis {
        ok
        latencyMs
        error
      }
      workers {
        ok
        count
        error
      }
    }
  }
`);

export function SystemPage() {
  const [q, refetch] = useQuery({ query: healthQuery, requestPolicy: "network-only" });
  const { epoch } = useConnection();
  // Health is a point-in-time check: poll it while the page is open.
  useEffect(() => {
    const t = setInterval(() => refetch({ requestPolicy: "network-only" }), 10_000);
    return () => clearInterval(t);
  }, [refetch]);
  useEffect(() => {
    if (epoch > 0) refetch({ requestPolicy: "network-only" });
  }, [epoch, refetch]);
  const h = q.data?.systemHealth;

  return (
    <div className="page">
      <div className="page-head">
        <h1>System</h1>
        <a className="btn" href="/monitoring/" target="_blank" rel="noreferrer">
          Open queue monitor (asynqmon) ↗
        </a>
      </div>
      <section className="card" aria-labelledby="health-h">
        <div className="card-head">
          <h2 id="health-h">Health</h2>
          {h && (
            <span className={`badge badge-health-${h.status}`} data-testid="health-status">
              {h.status}
            </span>
          )}
        </div>
        {!h && q.fetching && <Loading what="health" />}
        {!h && q.error && <ErrorState message={apiError(q.error)?.message ?? "Could not check health"} onRetry={() => refetch({ requestPolicy: "network-only" })} />}
        {h && (
          <>
            <div className="dep-grid">
              <Dep name="Database" ok={h.database.ok} detail={`${h.database.latencyMs.toFixed(1)} ms`} error={h.database.error} />
              <Dep name="Redis" ok={h.redis.ok} detail={`${h.redis.latencyMs.toFixed(1)} ms`} error={h.redis.error} />
              <Dep name="Workers" ok={h.workers.ok} detail={`${h.workers.count} process${h.workers.count === 1 ? "" : "es"}`} error={h.workers.error} />
            </div>
            <p className="muted">
              Version {h.version} · {h.mode === "embedded" ? "embedded (SQLite + in-process Redis)" : "external (MySQL + Redis)"} · checked {formatDateTime(h.time)}
            </p>
          </>
        )}
      </section>
      <ConfigSection epoch={epoch} />
      <ApiKeysSection />
      <ApiKeySection />
    </div>
  );
}

function Dep({ name, ok, detail, error }: { name: string; ok: boolean; detail: string; error?: string | null }) {
  return (
    <div className={`dep ${ok ? "dep-ok" : "dep-bad"}`} data-testid={`dep-${name.toLowerCase()}`}>
      <div className="dep-name">
        <span aria-hidden="true">{ok ? "●" : "○"}</span> {name}
      </div>
      <div className="dep-state">{ok ? "OK" : "Down"}</div>
      <div className="muted">{detail}</div>
      {error && <div className="inline-error">{error}</div>}
    </div>
  );
}

function ConfigSection({ epoch }: { epoch: number }) {
  const [state, setState] = useState<{ config?: SystemConfig; error?: string; loading: boolean }>({ loading: true });
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    fetchSystemConfig(ctl.signal)
      .then((config) => setState({ config, loading: false }))
      .catch((e: unknown) => {
        if (!ctl.signal.aborted) setState({ error: e instanceof Error ? e.message : String(e), loading: false });
      });
    return () => ctl.abort();
  }, [epoch]);
  return (
    <section className="card" aria-labelledby="config-h">
      <h2 id="config-h">Running configuration</h2>
      {state.loading && !state.config && <Loading what="configuration" />}
      {state.error && <ErrorState message={state.error} />}
      {state.config && (
        <>
          <p className="muted">Secrets are never sent to the browser; set ones are shown as ****.</p>
          <div className="table-wrap">
            <table className="config-table">
              <tbody>
                {flattenConfig(state.config).map(([k, v]) => (
                  <tr key={k}>
                    <th scope="row">
                      <code>{k}</code>
                    </th>
                    <td>
                      <code>{v}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}

function ApiKeySection() {
  const [value, setValue] = useState("");
  const has = Boolean(apiKey.get());
  const save = (e: FormEvent) => {
    e.preventDefault();
    apiKey.set(value.trim());
    window.location.reload();
  };
  return (
    <section className="card" aria-labelledby="key-h">
      <h2 id="key-h">API key</h2>
      <p className="muted">Needed only when the server has auth on. Kept in this browser's local storage.</p>
      <form className="form-inline" onSubmit={save}>
        <label htmlFor="api-key">Key</label>
        <input id="api-key" type="password" autoComplete="off" value={value} placeholder={has ? "a key is set" : "none"} onChange={(e) => setValue(e.target.value)} />
        <button type="submit">{value ? "Save and reload" : has ? "Forget key" : "Save"}</button>
      </form>
    </section>
  );
}
