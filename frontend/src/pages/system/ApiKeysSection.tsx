import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../../gql";
import type { ApiKeyRowFragment } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { useRefetchOnTaskEvents } from "../../api/useRefetchOnTaskEvents";
import { Empty, ErrorState, InlineError, Loading } from "../../components/states";
import { formatNumber } from "../../lib/format";
import { fieldOfServerError, roles, settingsValues, validateKeySettings, type KeySettingsValues } from "../../lib/apiKeyForm";

graphql(`
  fragment APIKeyRow on APIKey {
    id
    name
    role
    prefix
    weight
    tokensPerDay
    tokensPerMonth
    modelBudgets {
      modelID
      tokensPerDay
      tokensPerMonth
    }
    revokedAt
    usage {
      day {
        used
        limit
      }
      month {
        used
        limit
      }
    }
  }
`);

const keysQuery = graphql(`
  query APIKeys {
    apiKeys {
      ...APIKeyRow
    }
  }
`);

const createMutation = graphql(`
  mutation CreateAPIKey($input: CreateAPIKeyInput!) {
    createAPIKey(input: $input) {
      secret
      apiKey {
        ...APIKeyRow
      }
    }
  }
`);

const updateMutation = graphql(`
  mutation UpdateAPIKey($id: ID!, $input: UpdateAPIKeyInput!) {
    updateAPIKey(id: $id, input: $input) {
      ...APIKeyRow
    }
  }
`);

const cap = (used: number, limit: number | null | undefined) => (limit ? `${formatNumber(used)} / ${formatNumber(limit)}` : `${formatNumber(used)} (no cap)`);

/** ApiKeysSection: an admin's view of the API keys, their weights and token budgets, with their usage; create and edit. */
export function ApiKeysSection() {
  const [q, refetch] = useQuery({ query: keysQuery, requestPolicy: "cache-and-network" });
  const again = () => refetch({ requestPolicy: "network-only" });
  useRefetchOnTaskEvents(again);
  useRefetchOnReconnect(again);
  const [editing, setEditing] = useState<string | null>(null);
  const [created, setCreated] = useState<{ name: string; secret: string } | null>(null);
  const err = apiError(q.error);
  const keys = q.data?.apiKeys;
  return (
    <section className="card" aria-labelledby="keys-h">
      <h2 id="keys-h">API keys: weights and token budgets</h2>
      <p className="muted">
        A key's weight is its share of a model's slots against other callers of the same priority (1..1000). Token caps per UTC day and per month refuse
        new submissions once used up (429); running tasks go on. Empty or 0: no cap.
      </p>
      {!keys && q.fetching && <Loading what="API keys" />}
      {!keys && err && (err.code === "FORBIDDEN" || err.code === "UNAUTHENTICATED" ? <Empty>Only an admin key sees and edits API keys.</Empty> : <ErrorState message={err.message} onRetry={again} />)}
      {created && (
        <p className="notice" role="status">
          Created key <strong>{created.name}</strong>. It is shown this once: <code data-testid="new-key-secret">{created.secret}</code>
        </p>
      )}
      {keys &&
        (keys.length === 0 ? (
          <Empty>No API keys yet.</Empty>
        ) : (
          <div className="table-wrap">
            <table data-testid="api-keys">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Weight</th>
                  <th scope="col">Today</th>
                  <th scope="col">This month</th>
                  <th scope="col">Model caps</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.map((k) => (
                  <KeyRow
                    key={k.id}
                    k={k}
                    editing={editing === k.id}
                    onEdit={() => setEditing(editing === k.id ? null : k.id)}
                    onSaved={() => {
                      setEditing(null);
                      again();
                    }}
                  />
                ))}
              </tbody>
            </table>
          </div>
        ))}
      {keys && (
        <CreateKeyForm
          onCreated={(name, secret) => {
            setCreated({ name, secret });
            again();
          }}
        />
      )}
    </section>
  );
}

function KeyRow({ k, editing, onEdit, onSaved }: { k: ApiKeyRowFragment; editing: boolean; onEdit: () => void; onSaved: () => void }) {
  return (
    <>
      <tr data-key={k.name} data-weight={k.weight}>
        <td>
          {k.name} <span className="muted">{k.prefix}…</span>
          {k.revokedAt && <span className="muted"> (revoked)</span>}
        </td>
        <td>{k.role}</td>
        <td data-testid="key-weight">{k.weight}</td>
        <td data-testid="key-day">{cap(k.usage.day.used, k.tokensPerDay)}</td>
        <td data-testid="key-month">{cap(k.usage.month.used, k.tokensPerMonth)}</td>
        <td>
          {k.modelBudgets.length === 0
            ? "—"
            : k.modelBudgets.map((b) => `model ${b.modelID}: ${[b.tokensPerDay && `${formatNumber(b.tokensPerDay)}/day`, b.tokensPerMonth && `${formatNumber(b.tokensPerMonth)}/month`].filter(Boolean).join(", ")}`).join("; ")}
        </td>
        <td>
          <button type="button" className="btn-link" onClick={onEdit} aria-expanded={editing} aria-label={`Edit key ${k.name}`}>
            {editing ? "Close" : "Edit"}
          </button>
        </td>
      </tr>
      {editing && (
        <tr>
          <td colSpan={7}>
            <EditKeyForm k={k} onSaved={onSaved} />
          </td>
        </tr>
      )}
    </>
  );
}

function SettingsFields({ v, set, errors, idp }: { v: KeySettingsValues; set: (v: KeySettingsValues) => void; errors: Record<string, string>; idp: string }) {
  const field = (name: keyof KeySettingsValues, label: string, hint: string) => (
    <div className="field">
      <label htmlFor={`${idp}-${name}`}>{label}</label>
      <input
        id={`${idp}-${name}`}
        inputMode="numeric"
        value={v[name]}
        placeholder={hint}
        onChange={(e) => set({ ...v, [name]: e.target.value })}
        aria-invalid={Boolean(errors[name])}
        aria-describedby={errors[name] ? `${idp}-${name}-err` : undefined}
      />
      {errors[name] && (
        <small id={`${idp}-${name}-err`} className="field-error" role="alert">
          {errors[name]}
        </small>
      )}
    </div>
  );
  return (
    <>
      {field("weight", "Weight", "1..1000")}
      {field("tokensPerDay", "Tokens per day", "no cap")}
      {field("tokensPerMonth", "Tokens per month", "no cap")}
    </>
  );
}

function EditKeyForm({ k, onSaved }: { k: ApiKeyRowFragment; onSaved: () => void }) {
  const idp = useId();
  const [v, setV] = useState(settingsValues(k));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [state, update] = useMutation(updateMutation);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFailure(null);
    const { errors: errs, input } = validateKeySettings(v);
    setErrors(errs);
    if (!input) return;
    const res = await update({ id: k.id, input });
    if (res.error) {
      const ae = apiError(res.error);
      const f = fieldOfServerError(ae?.field ?? null);
      if (f && ae) setErrors({ [f]: ae.message });
      else setFailure(ae?.message ?? "Could not save the key");
      return;
    }
    onSaved();
  };
  return (
    <form className="form" onSubmit={(e) => void submit(e)} noValidate aria-label={`Settings of key ${k.name}`}>
      <div className="form-row">
        <SettingsFields v={v} set={setV} errors={errors} idp={idp} />
      </div>
      <InlineError message={failure} />
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={state.fetching}>
          Save
        </button>
      </div>
    </form>
  );
}

function CreateKeyForm({ onCreated }: { onCreated: (name: string, secret: string) => void }) {
  const idp = useId();
  const [name, setName] = useState("");
  const [role, setRole] = useState<string>("submitter");
  const [v, setV] = useState<KeySettingsValues>({ weight: "1", tokensPerDay: "", tokensPerMonth: "" });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [state, create] = useMutation(createMutation);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setFailure(null);
    const { errors: errs, input } = validateKeySettings(v);
    if (!name.trim()) errs.name = "Name is required";
    setErrors(errs);
    if (!input || errs.name) return;
    const res = await create({
      input: { name: name.trim(), role, weight: input.weight, tokensPerDay: input.tokensPerDay || null, tokensPerMonth: input.tokensPerMonth || null },
    });
    if (res.error || !res.data) {
      const ae = apiError(res.error);
      const f = fieldOfServerError(ae?.field ?? null);
      if (f && ae) setErrors({ [f]: ae.message });
      else setFailure(ae?.message ?? "Could not create the key");
      return;
    }
    onCreated(res.data.createAPIKey.apiKey.name, res.data.createAPIKey.secret);
    setName("");
    setV({ weight: "1", tokensPerDay: "", tokensPerMonth: "" });
  };
  return (
    <form className="form" onSubmit={(e) => void submit(e)} noValidate aria-label="New API key">
      <h3>New key</h3>
      <div className="form-row">
        <div className="field">
          <label htmlFor={`${idp}-name`}>Key name</label>
          <input id={`${idp}-name`} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" aria-invalid={Boolean(errors.name)} />
          {errors.name && (
            <small className="field-error" role="alert">
              {errors.name}
            </small>
          )}
        </div>
        <div className="field">
          <label htmlFor={`${idp}-role`}>Role</label>
          <select id={`${idp}-role`} value={role} onChange={(e) => setRole(e.target.value)}>
            {roles.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
        <SettingsFields v={v} set={setV} errors={errors} idp={idp} />
      </div>
      <InlineError message={failure} />
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={state.fetching}>
          Create key
        </button>
      </div>
    </form>
  );
}
