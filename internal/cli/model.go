package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
)

const modelUsage = `usage:
  llm-scheduler model list
  llm-scheduler model create --name NAME --type openai|local|custom|simulator [--config JSON] [--max-workers N] [--description TEXT]
  llm-scheduler model online NAME|ID
  llm-scheduler model offline NAME|ID

Every command takes --server URL (env LLMSCHED_SERVER, default http://127.0.0.1:8080),
--api-key KEY (env LLMSCHED_API_KEY) and --json. See docs/cli.md.
`

func modelCommand(args []string, o IO) error {
	return sub("model", args, modelUsage, o, map[string]func([]string, IO) error{
		"list": modelList, "create": modelCreate,
		"online": modelStatus("online"), "offline": modelStatus("offline"),
	})
}

// model is the REST view of a model.
type model struct {
	ID          int64          `json:"id"`
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Config      map[string]any `json:"config"`
	Status      string         `json:"status"`
	MaxWorkers  int            `json:"max_workers"`
	Description string         `json:"description,omitempty"`
	Running     int            `json:"running"`
	Queued      int            `json:"queued"`
}

func listModels(ctx context.Context, cl *client) ([]model, error) {
	var ms []model
	err := cl.do(ctx, "GET", "/api/v1/models", nil, &ms)
	return ms, err
}

// resolveModel turns a model name or ID into its ID. A name is looked up
// first, so a model named "42" is found by name.
func resolveModel(ctx context.Context, cl *client, ref string) (int64, error) {
	ms, err := listModels(ctx, cl)
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if m.Name == ref {
			return m.ID, nil
		}
	}
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	return 0, fail(ExitRefused, "no model named %q (model list shows them)", ref)
}

func modelList(args []string, o IO) error {
	fs := newFlags("model list", o)
	var c common
	c.register(fs, o)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("model list takes no arguments, got %q", pos)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	ms, err := listModels(context.Background(), cl)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(o.Stdout, ms)
	}
	tw := tabwriter.NewWriter(o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tSTATUS\tRUNNING\tQUEUED\tMAX_WORKERS")
	for _, m := range ms {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%d\n", m.ID, m.Name, m.Type, m.Status, m.Running, m.Queued, m.MaxWorkers)
	}
	return tw.Flush()
}

func modelCreate(args []string, o IO) error {
	fs := newFlags("model create", o)
	var c common
	c.register(fs, o)
	name := fs.String("name", "", "model name (required)")
	typ := fs.String("type", "", "openai, local, custom or simulator (required)")
	cfg := fs.String("config", "", `provider settings as a JSON object, e.g. '{"base_url": "http://localhost:11434/v1", "model": "llama3"}'`)
	workers := fs.Int("max-workers", 0, "tasks it runs at once (default: the server's worker.default_workers)")
	desc := fs.String("description", "", "a note for people")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("model create takes no arguments, got %q", pos)
	}
	if *name == "" || *typ == "" {
		return usageErr("model create: --name and --type are required")
	}
	body := map[string]any{"name": *name, "type": *typ}
	if *cfg != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(*cfg), &m); err != nil {
			return usageErr("--config must be a JSON object: %v", err)
		}
		body["config"] = m
	}
	if *workers > 0 {
		body["max_workers"] = *workers
	}
	if *desc != "" {
		body["description"] = *desc
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	var m model
	if err := cl.do(context.Background(), "POST", "/api/v1/models", body, &m); err != nil {
		return err
	}
	if c.json {
		return writeJSON(o.Stdout, m)
	}
	fmt.Fprintf(o.Stdout, "%d\n", m.ID)
	fmt.Fprintf(o.Stderr, "model %d %q %s\n", m.ID, m.Name, m.Status)
	return nil
}

func modelStatus(status string) func([]string, IO) error {
	return func(args []string, o IO) error {
		fs := newFlags("model "+status, o)
		var c common
		c.register(fs, o)
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErr("model %s takes one model name or ID, got %d arguments", status, len(pos))
		}
		cl, err := newClient(c)
		if err != nil {
			return err
		}
		ctx := context.Background()
		id, err := resolveModel(ctx, cl, pos[0])
		if err != nil {
			return err
		}
		var m model
		if err := cl.do(ctx, "PUT", fmt.Sprintf("/api/v1/models/%d/status", id), map[string]any{"status": status}, &m); err != nil {
			return err
		}
		if c.json {
			return writeJSON(o.Stdout, m)
		}
		fmt.Fprintf(o.Stdout, "model %d %q %s\n", m.ID, m.Name, m.Status)
		return nil
	}
}
