import { useId, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useMutation } from "urql";
import { graphql } from "../../gql";
import { apiError } from "../../api/errors";
import { enumLabel } from "../../lib/format";
import type { FormErrors } from "../../lib/modelForm";
import {
  buildTaskRequest,
  emptyTaskForm,
  formKeyForServerField,
  taskTypeFields,
  taskTypes,
  validateTaskForm,
  type TaskFormValues,
  type TaskTypeName,
} from "../../lib/taskForm";
import { InlineError } from "../../components/states";

const createTaskMutation = graphql(`
  mutation CreateTask($input: CreateTaskInput!) {
    createTask(input: $input) {
      ...TaskRowFields
    }
  }
`);

export interface ModelChoice {
  id: string;
  name: string;
  type: string;
  status: string;
}

interface FieldDef {
  label: string;
  kind: "text" | "number" | "textarea" | "select";
  placeholder?: string;
  options?: string[];
  help?: string;
}

const typeFieldDefs: Partial<Record<keyof TaskFormValues, FieldDef>> = {
  targetLanguage: { label: "Target language", kind: "text", placeholder: "English" },
  sourceLanguage: { label: "Source language (optional)", kind: "text", placeholder: "detect" },
  length: { label: "Summary length", kind: "select", options: ["", "short", "medium", "long"] },
  systemPrompt: { label: "System prompt (optional)", kind: "textarea" },
  maxTokens: { label: "Max tokens", kind: "number", placeholder: "model default" },
  temperature: { label: "Temperature", kind: "number", placeholder: "model default" },
  messages: { label: "Messages (JSON, optional)", kind: "textarea", placeholder: '[{"role": "user", "content": "Hi"}]', help: "Replaces the input as the chat sent to the model." },
  parameters: { label: "Extra parameters (JSON object, optional)", kind: "textarea", placeholder: '{"top_p": 0.9}' },
};

export function CreateTaskForm({
  models,
  modelsLoading,
  defaultModel,
  onCreated,
}: {
  models: readonly ModelChoice[];
  modelsLoading: boolean;
  defaultModel?: string;
  onCreated: (id: string) => void;
}) {
  const formId = useId();
  const [v, setV] = useState<TaskFormValues>(() => emptyTaskForm(defaultModel ?? models[0]?.id ?? ""));
  const [errors, setErrors] = useState<FormErrors>({});
  const [submitError, setSubmitError] = useState<string | null>(null);
  const [state, create] = useMutation(createTaskMutation);
  const modelId = v.modelId || models[0]?.id || "";

  const set = <K extends keyof TaskFormValues>(k: K, value: TaskFormValues[K]) => setV((cur) => ({ ...cur, [k]: value }));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const values = { ...v, modelId };
    const errs = validateTaskForm(values);
    setErrors(errs);
    setSubmitError(null);
    if (Object.keys(errs).length) return;
    const r = buildTaskRequest(values);
    const res = await create({ input: { ...r, type: r.type } });
    if (res.error) {
      const ae = apiError(res.error);
      const key = formKeyForServerField(ae?.field);
      if (key && ae) setErrors({ [key]: ae.message });
      else setSubmitError(ae?.message ?? "Could not create the task");
      return;
    }
    const id = res.data?.createTask.id;
    if (id) {
      onCreated(id);
      setV((cur) => ({ ...emptyTaskForm(cur.modelId), type: cur.type, priority: cur.priority, targetLanguage: cur.targetLanguage }));
      setErrors({});
    }
  };

  if (!modelsLoading && models.length === 0) {
    return (
      <p>
        No model can take tasks yet. <Link to="/models/new">Register a model</Link> first.
      </p>
    );
  }
  const fieldId = (k: string) => `${formId}-${k}`;
  const err = (k: string) => errors[k];
  const describedBy = (k: string) => (errors[k] ? `${fieldId(k)}-err` : undefined);
  const selected = models.find((m) => m.id === modelId);

  return (
    <form className="form" onSubmit={(e) => void submit(e)} noValidate aria-label="New task">
      <div className="form-row">
        <div className="field">
          <label htmlFor={fieldId("modelId")}>Model</label>
          <select id={fieldId("modelId")} value={modelId} onChange={(e) => set("modelId", e.target.value)} aria-invalid={Boolean(err("modelId"))} aria-describedby={describedBy("modelId")}>
            {models.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name} ({enumLabel(m.type)}
                {m.status === "OFFLINE" ? ", offline" : ""})
              </option>
            ))}
          </select>
          {selected?.status === "OFFLINE" && <small className="hint">This model is offline: the task waits until it is online.</small>}
          <FieldError id={`${fieldId("modelId")}-err`} message={err("modelId")} />
        </div>
        <div className="field">
          <label htmlFor={fieldId("type")}>Type</label>
          <select id={fieldId("type")} value={v.type} onChange={(e) => set("type", e.target.value as TaskTypeName)}>
            {taskTypes.map((t) => (
              <option key={t} value={t}>
                {enumLabel(t)}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={fieldId("priority")}>Priority</label>
          <select id={fieldId("priority")} value={v.priority} onChange={(e) => set("priority", e.target.value as TaskFormValues["priority"])}>
            <option value="3">high</option>
            <option value="2">medium</option>
            <option value="1">low</option>
          </select>
        </div>
      </div>
      <div className="field">
        <label htmlFor={fieldId("input")}>{v.type === "EMBEDDING" ? "Text to embed" : v.type === "TRANSLATION" ? "Text to translate" : v.type === "SUMMARIZATION" ? "Text to summarize" : "Input"}</label>
        <textarea id={fieldId("input")} rows={4} value={v.input} onChange={(e) => set("input", e.target.value)} aria-invalid={Boolean(err("input"))} aria-describedby={describedBy("input")} />
        <FieldError id={`${fieldId("input")}-err`} message={err("input")} />
      </div>
      <div className="form-row">
        {taskTypeFields(v.type).map((k) => {
          const d = typeFieldDefs[k];
          if (!d) return null;
          const id = fieldId(k);
          const common = {
            id,
            value: v[k],
            "aria-invalid": Boolean(err(k)),
            "aria-describedby": describedBy(k),
          };
          return (
            <div className={`field ${d.kind === "textarea" ? "field-wide" : ""}`} key={k}>
              <label htmlFor={id}>{d.label}</label>
              {d.kind === "textarea" ? (
                <textarea {...common} rows={3} placeholder={d.placeholder} onChange={(e) => set(k, e.target.value)} />
              ) : d.kind === "select" ? (
                <select {...common} onChange={(e) => set(k, e.target.value)}>
                  {(d.options ?? []).map((o) => (
                    <option key={o} value={o}>
                      {o || "default"}
                    </option>
                  ))}
                </select>
              ) : (
                <input {...common} inputMode={d.kind === "number" ? "decimal" : undefined} placeholder={d.placeholder} onChange={(e) => set(k, e.target.value)} />
              )}
              {d.help && <small className="hint">{d.help}</small>}
              <FieldError id={`${id}-err`} message={err(k)} />
            </div>
          );
        })}
      </div>
      <details>
        <summary>Retries, timeout and schedule</summary>
        <div className="form-row">
          <div className="field">
            <label htmlFor={fieldId("maxRetries")}>Max retries</label>
            <input id={fieldId("maxRetries")} inputMode="numeric" placeholder="server default" value={v.maxRetries} onChange={(e) => set("maxRetries", e.target.value)} aria-invalid={Boolean(err("maxRetries"))} aria-describedby={describedBy("maxRetries")} />
            <FieldError id={`${fieldId("maxRetries")}-err`} message={err("maxRetries")} />
          </div>
          <div className="field">
            <label htmlFor={fieldId("timeoutSeconds")}>Timeout (seconds)</label>
            <input id={fieldId("timeoutSeconds")} inputMode="numeric" placeholder="server default" value={v.timeoutSeconds} onChange={(e) => set("timeoutSeconds", e.target.value)} aria-invalid={Boolean(err("timeoutSeconds"))} aria-describedby={describedBy("timeoutSeconds")} />
            <FieldError id={`${fieldId("timeoutSeconds")}-err`} message={err("timeoutSeconds")} />
          </div>
          <div className="field">
            <label htmlFor={fieldId("delaySeconds")}>Run after (seconds)</label>
            <input id={fieldId("delaySeconds")} inputMode="numeric" placeholder="now" value={v.delaySeconds} onChange={(e) => set("delaySeconds", e.target.value)} aria-invalid={Boolean(err("delaySeconds"))} aria-describedby={describedBy("delaySeconds")} />
            <FieldError id={`${fieldId("delaySeconds")}-err`} message={err("delaySeconds")} />
          </div>
        </div>
      </details>
      <InlineError message={submitError} />
      <div className="form-actions">
        <button type="submit" className="btn-primary" disabled={state.fetching}>
          {state.fetching ? "Submitting…" : "Submit task"}
        </button>
      </div>
    </form>
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
