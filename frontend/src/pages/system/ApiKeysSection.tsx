import { useId, useState, type FormEvent } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../../gql";
import type { ApiKeyRowFragment } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { useRefetchOnReconnect } from "../../api/useRefetchOnReconnect";
import { useRefetchOnTaskEvents } from "../../api/useRefetchOnTaskEvents";
import { Empty, ErrorState, InlineError, Loading } from "../../components/states";
import { formatNumber } from "../../lib/format";
import {
  emptyModelCap,
  emptySettings,
  fieldOfServerError,
  modelCapField,
  roles,
  settingsValues,
  validateKeySettings,
  type KeySettingsValues,
  type ModelCapValues,
} from "../../lib/apiKeyForm";
import { modelChoicesQuery } from "../tasks/documents";
import { idNumber } from "../../lib/ids";

/** ModelChoice is a model a cap can name (deleted ones are left out). */
interface ModelChoice {
  id: string;
  name: string;
}

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
  const [mq] = useQuery({ query: modelChoicesQuery, requestPolicy: "cache-and-network" });
  const models: ModelChoice[] = (mq.data?.models.edges ?? []).flatMap((e) => (e?.node && !e.node.deletedAt ? [{ id: e.node.id, name: e.node.name }] : []));
  const modelName = (id: string) => models.find((m) => m.id === id)?.name ?? `model ${idNumber(id)}`;
  const err = apiError(q.error);
  const keys = q.data?.apiKeys;
  return (
    <section className="card" aria-labelledby="keys-h">
      <h2 id="keys-h">API keys: weights and token budgets</h2>
      <p className="muted">
        A key's weight is its share of a model's slots against other callers of the same priority (1..1000). Token caps per UTC day and per month refuse
        new submissions once used up (429); running tasks go on. Empty or 0: no cap. Model caps do the same for the key's tasks on one model.
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
                    models={models}
                    modelName={modelName}
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
          models={models}
          onCreated={(name, secret) => {
            setCreated({ name, secret });
            again();
          }}
        />
      )}
    </section>
  );
}

function KeyRow({
  k,
  models,
  modelName,
  editing,
  onEdit,
  onSaved,
}: {
  k: ApiKeyRowFragment;
  models: readonly ModelChoice[];
  modelName: (id: string) => string;
  editing: boolean;
  onEdit: () => void;
  onSaved: () => void;
}) {
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
        <td data-testid="key-model-caps">
          {k.modelBudgets.length === 0
            ? "—"
            : k.modelBudgets
                .map(
                  (b) =>
                    `${modelName(b.modelID)}: ${[b.tokensPerDay && `${formatNumber(b.tokensPerDay)}/day`, b.tokensPerMonth && `${formatNumber(b.tokensPerMonth)}/month`].filter(Boolean).join(", ")}`,
                )
                .join("; ")}
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
            <EditKeyForm k={k} models={models} onSaved={onSaved} />
          </td>
        </tr>
      )}
    </>
  );
}

function SettingsFields({ v, set, errors, idp }: { v: KeySettingsValues; set: (v: KeySettingsValues) => void; errors: Record<string, string>; idp: string }) {
  const field = (name: "weight" | "tokensPerDay" | "tokensPerMonth", label: string, hint: string) => (
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

/**
 * ModelCapsFields edits a key's token caps on single models: one row per
 * model (a model, tokens per day, tokens per month), added and removed
 * here; the whole list is sent and replaces the key's.
 */
function ModelCapsFields({
  v,
  set,
  errors,
  idp,
  models,
}: {
  v: KeySettingsValues;
  set: (v: KeySettingsValues) => void;
  errors: Record<string, string>;
  idp: string;
  models: readonly ModelChoice[];
}) {
  const caps = v.modelBudgets;
  const put = (i: number, c: ModelCapValues) => set({ ...v, modelBudgets: caps.map((x, j) => (j === i ? c : x)) });
  const remove = (i: number) => set({ ...v, modelBudgets: caps.filter((_, j) => j !== i) });
  const add = () => set({ ...v, modelBudgets: [...caps, emptyModelCap(models.find((m) => !caps.some((c) => c.modelId === m.id))?.id ?? "")] });
  const err = (f: string) =>
    errors[f] && (
      <small id={`${idp}-${f}-err`} className="field-error" role="alert">
        {errors[f]}
      </small>
    );
  return (
    <fieldset className="model-caps" data-testid="model-caps">
      <legend>Token caps per model</legend>
      {caps.length === 0 && <p className="muted">No model caps: only the key's overall caps apply.</p>}
      {err("modelBudgets")}
      {caps.map((c, i) => {
        const label = models.find((m) => m.id === c.modelId)?.name ?? (c.modelId ? `model ${idNumber(c.modelId)}` : `cap ${i + 1}`);
        const num = (f: "tokensPerDay" | "tokensPerMonth", text: string) => {
          const name = modelCapField(i, f);
          return (
            <div className="field">
              <label htmlFor={`${idp}-${name}`}>{text}</label>
              <input
                id={`${idp}-${name}`}
                inputMode="numeric"
                value={c[f]}
                placeholder="no cap"
                onChange={(e) => put(i, { ...c, [f]: e.target.value })}
                aria-invalid={Boolean(errors[name])}
                aria-describedby={errors[name] ? `${idp}-${name}-err` : undefined}
              />
              {err(name)}
            </div>
          );
        };
        const modelField = modelCapField(i, "modelId");
        return (
          <div className="form-row" key={i} role="group" aria-label={`Model cap ${i + 1}`} data-cap-model={c.modelId}>
            <div className="field">
              <label htmlFor={`${idp}-${modelField}`}>Model</label>
              <select
                id={`${idp}-${modelField}`}
                value={c.modelId}
                onChange={(e) => put(i, { ...c, modelId: e.target.value })}
                aria-invalid={Boolean(errors[modelField])}
                aria-describedby={errors[modelField] ? `${idp}-${modelField}-err` : undefined}
              >
                <option value="">Choose a model</option>
                {/* A cap on a model that is gone still shows, so that it can be removed. */}
                {c.modelId && !models.some((m) => m.id === c.modelId) && <option value={c.modelId}>model {idNumber(c.modelId)}</option>}
                {models.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.name}
                  </option>
                ))}
              </select>
              {err(modelField)}
            </div>
            {num("tokensPerDay", "Model tokens per day")}
            {num("tokensPerMonth", "Model tokens per month")}
            <div className="field field-action">
              <button type="button" className="btn-link" onClick={() => remove(i)} aria-label={`Remove the cap on ${label}`}>
                Remove
              </button>
            </div>
            {err(modelCapField(i))}
          </div>
        );
      })}
      <button type="button" className="btn-link" onClick={add} disabled={models.length === 0}>
        Add a model cap
      </button>
    </fieldset>
  );
}

function EditKeyForm({ k, models, onSaved }: { k: ApiKeyRowFragment; models: readonly ModelChoice[]; onSaved: () => void }) {
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
      <ModelCapsFields v={v} set={setV} errors={errors} idp={idp} models={models} />
      <InlineError message={failure} />
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={state.fetching}>
          Save
        </button>
      </div>
    </form>
  );
}

function CreateKeyForm({ models, onCreated }: { models: readonly ModelChoice[]; onCreated: (name: string, secret: string) => void }) {
  const idp = useId();
  const [name, setName] = useState("");
  const [role, setRole] = useState<string>("submitter");
  const [v, setV] = useState<KeySettingsValues>(emptySettings);
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
      input: {
        name: name.trim(),
        role,
        weight: input.weight,
        tokensPerDay: input.tokensPerDay || null,
        tokensPerMonth: input.tokensPerMonth || null,
        modelBudgets: input.modelBudgets.length ? input.modelBudgets : null,
      },
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
    setV(emptySettings());
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
      <ModelCapsFields v={v} set={setV} errors={errors} idp={idp} models={models} />
      <InlineError message={failure} />
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={state.fetching}>
          Create key
        </button>
      </div>
    </form>
  );
}
