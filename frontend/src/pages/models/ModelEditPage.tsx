import { useEffect, useId, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useMutation, useQuery } from "urql";
import { graphql } from "../../gql";
import type { ModelType } from "../../gql/graphql";
import { apiError } from "../../api/errors";
import { ErrorState, InlineError, Loading } from "../../components/states";
import { enumLabel } from "../../lib/format";
import {
  buildModelConfig,
  configToValues,
  emptyModelForm,
  modelFields,
  modelTypes,
  validateModelForm,
  type FieldSpec,
  type FormErrors,
  type ModelFormValues,
} from "../../lib/modelForm";

const modelQuery = graphql(`
  query ModelEdit($id: ID!) {
    model(id: $id) {
      id
      name
      type
      status
      maxWorkers
      description
      config
      deletedAt
    }
  }
`);

const createMutation = graphql(`
  mutation CreateModel($input: CreateModelInput!) {
    createModel(input: $input) {
      ...ModelListFields
    }
  }
`);

const updateMutation = graphql(`
  mutation UpdateModel($id: ID!, $input: UpdateModelInput!) {
    updateModel(id: $id, input: $input) {
      ...ModelListFields
    }
  }
`);

export function ModelEditPage() {
  const { id } = useParams();
  const editing = Boolean(id);
  const [q, refetch] = useQuery({ query: modelQuery, variables: { id: id ?? "" }, pause: !editing });
  if (!editing) return <ModelForm />;
  if (q.fetching && !q.data) return <Loading what="the model" />;
  if (q.error || !q.data?.model || q.data.model.deletedAt)
    return (
      <div className="page">
        <p>
          <Link to="/models">← Models</Link>
        </p>
        <ErrorState message={q.data?.model?.deletedAt ? `Model ${q.data.model.name} was deleted` : (apiError(q.error)?.message ?? `Model ${id} does not exist`)} onRetry={() => refetch({ requestPolicy: "network-only" })} />
      </div>
    );
  return <ModelForm existing={q.data.model} />;
}

interface Existing {
  id: string;
  name: string;
  type: ModelType;
  maxWorkers: number;
  description?: string | null;
  config: Record<string, unknown>;
}

function ModelForm({ existing }: { existing?: Existing }) {
  const navigate = useNavigate();
  const formId = useId();
  const editing = Boolean(existing);
  const [v, setV] = useState<ModelFormValues>(() => {
    if (!existing) return emptyModelForm();
    return {
      name: existing.name,
      type: existing.type,
      maxWorkers: String(existing.maxWorkers),
      description: existing.description ?? "",
      config: configToValues(existing.type, existing.config).values,
    };
  });
  const hints = existing ? configToValues(existing.type, existing.config).secretHints : {};
  const [errors, setErrors] = useState<FormErrors>({});
  const [submitError, setSubmitError] = useState<string | null>(null);
  const [createState, create] = useMutation(createMutation);
  const [updateState, update] = useMutation(updateMutation);
  const busy = createState.fetching || updateState.fetching;

  useEffect(() => {
    document.title = `${editing ? "Edit" : "New"} model · LLM Scheduler`;
    return () => {
      document.title = "LLM Scheduler";
    };
  }, [editing]);

  const setConfig = (k: string, value: string) => setV((cur) => ({ ...cur, config: { ...cur.config, [k]: value } }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const errs = validateModelForm(v, editing);
    setErrors(errs);
    setSubmitError(null);
    if (Object.keys(errs).length) {
      document.getElementById(`${formId}-${Object.keys(errs)[0]}`)?.focus();
      return;
    }
    const config = buildModelConfig(v.type, v.config, existing?.config);
    const common = { name: v.name.trim(), config, maxWorkers: Number(v.maxWorkers), description: v.description.trim() || null };
    const res = existing ? await update({ id: existing.id, input: common }) : await create({ input: { ...common, type: v.type } });
    if (res.error) {
      const ae = apiError(res.error);
      const f = ae?.field?.replace(/^input\./, "") ?? "";
      const key = f.startsWith("config.") ? f : f === "max_workers" || f === "maxWorkers" ? "maxWorkers" : f === "name" ? "name" : null;
      if (key && ae) setErrors({ [key]: ae.message });
      else setSubmitError(ae?.message ?? "Could not save the model");
      return;
    }
    navigate("/models");
  };

  const fid = (k: string) => `${formId}-${k}`;
  const errFor = (k: string) => errors[k];

  return (
    <div className="page">
      <p>
        <Link to="/models">← Models</Link>
      </p>
      <h1>{existing ? `Edit ${existing.name}` : "New model"}</h1>
      <form className="form card" onSubmit={(e) => void submit(e)} noValidate aria-label={existing ? "Edit model" : "New model"}>
        <div className="form-row">
          <div className="field">
            <label htmlFor={fid("name")}>Name</label>
            <input id={fid("name")} value={v.name} onChange={(e) => setV({ ...v, name: e.target.value })} aria-invalid={Boolean(errFor("name"))} aria-describedby={errFor("name") ? `${fid("name")}-err` : undefined} autoComplete="off" />
            <FieldError id={`${fid("name")}-err`} message={errFor("name")} />
          </div>
          <div className="field">
            <label htmlFor={fid("type")}>Type</label>
            <select
              id={fid("type")}
              value={v.type}
              disabled={editing}
              onChange={(e) => {
                const t = e.target.value as ModelFormValues["type"];
                setV({ ...v, type: t, config: emptyModelForm(t).config });
                setErrors({});
              }}
            >
              {modelTypes.map((t) => (
                <option key={t} value={t}>
                  {enumLabel(t)}
                </option>
              ))}
            </select>
            {editing && <small className="hint">The type of a model cannot change; register a new one instead.</small>}
          </div>
          <div className="field">
            <label htmlFor={fid("maxWorkers")}>Max workers</label>
            <input id={fid("maxWorkers")} inputMode="numeric" value={v.maxWorkers} onChange={(e) => setV({ ...v, maxWorkers: e.target.value })} aria-invalid={Boolean(errFor("maxWorkers"))} aria-describedby={errFor("maxWorkers") ? `${fid("maxWorkers")}-err` : undefined} />
            <small className="hint">Tasks of this model running at once, across all workers.</small>
            <FieldError id={`${fid("maxWorkers")}-err`} message={errFor("maxWorkers")} />
          </div>
        </div>
        <div className="field">
          <label htmlFor={fid("description")}>Description (optional)</label>
          <input id={fid("description")} value={v.description} onChange={(e) => setV({ ...v, description: e.target.value })} />
        </div>
        <fieldset>
          <legend>{enumLabel(v.type)} settings</legend>
          {v.type === "SIMULATOR" && <p className="hint">The simulator is built in: no real LLM, configurable latency, pace and failures. For demos and load tests.</p>}
          <div className="form-row">
            {modelFields[v.type].map((f) => (
              <ConfigField key={f.key} f={f} id={fid(`config.${f.key}`)} value={v.config[f.key] ?? ""} error={errFor(`config.${f.key}`)} hint={hints[f.key]} onChange={(x) => setConfig(f.key, x)} />
            ))}
          </div>
        </fieldset>
        <InlineError message={submitError} />
        <div className="form-actions">
          <button type="submit" className="btn-primary" disabled={busy}>
            {busy ? "Saving…" : existing ? "Save changes" : "Create model"}
          </button>
          <Link className="btn" to="/models">
            Cancel
          </Link>
        </div>
      </form>
    </div>
  );
}

function ConfigField({ f, id, value, error, hint, onChange }: { f: FieldSpec; id: string; value: string; error?: string; hint?: string; onChange: (v: string) => void }) {
  const describedBy = [error ? `${id}-err` : "", f.help ? `${id}-help` : ""].filter(Boolean).join(" ") || undefined;
  const common = { id, "aria-invalid": Boolean(error), "aria-describedby": describedBy };
  let input;
  switch (f.kind) {
    case "select":
      input = (
        <select {...common} value={value} onChange={(e) => onChange(e.target.value)}>
          {(f.options ?? []).map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      );
      break;
    case "json":
    case "headers":
      input = <textarea {...common} rows={4} value={value} placeholder={f.placeholder} spellCheck={false} onChange={(e) => onChange(e.target.value)} />;
      break;
    case "secret":
      input = (
        <input
          {...common}
          type="password"
          autoComplete="new-password"
          value={value}
          placeholder={hint ? `unchanged (${hint})` : f.placeholder}
          onChange={(e) => onChange(e.target.value)}
        />
      );
      break;
    default:
      input = (
        <input
          {...common}
          type={f.kind === "url" ? "url" : "text"}
          inputMode={f.kind === "int" ? "numeric" : f.kind === "number" ? "decimal" : undefined}
          value={value}
          placeholder={f.placeholder}
          onChange={(e) => onChange(e.target.value)}
        />
      );
  }
  return (
    <div className={`field ${f.kind === "json" || f.kind === "headers" ? "field-wide" : ""}`}>
      <label htmlFor={id}>
        {f.label}
        {f.required ? "" : " (optional)"}
      </label>
      {input}
      {f.help && (
        <small id={`${id}-help`} className="hint">
          {f.help}
        </small>
      )}
      <FieldError id={`${id}-err`} message={error} />
    </div>
  );
}

function FieldError({ id, message }: { id: string; message: string | undefined }) {
  if (!message) return null;
  return (
    <small id={id} className="field-error" role="alert">
      {message}
    </small>
  );
}
