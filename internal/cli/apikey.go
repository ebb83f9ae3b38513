package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
	"github.com/llmsched/llm-scheduler/internal/secrets"
	"github.com/llmsched/llm-scheduler/internal/store"
)

const apikeyUsage = `usage:
  llm-scheduler apikey create --name NAME --role admin|operator|submitter|viewer [SETTINGS] [--config FILE]
  llm-scheduler apikey update ID SETTINGS [--config FILE]
  llm-scheduler apikey list [--config FILE]
  llm-scheduler apikey revoke ID [--config FILE]

SETTINGS (docs/fairness.md); update changes only the ones given:
  --weight N                 share of a model's slots against other callers, 1..1000 (default 1)
  --tokens-per-day N         cap per UTC day; 0 removes it
  --tokens-per-month N       cap per calendar month; 0 removes it
  --model-budget ID:day=N,month=N
                             a cap on one model (repeatable; day or month may be left out);
                             given at all, the list replaces the key's model caps
  --no-model-budgets         removes every model cap (update)

The key is printed once by create; only its SHA-256 is stored.
`

// modelBudgetFlags collects repeated --model-budget ID:day=N,month=N.
type modelBudgetFlags struct {
	set bool
	bs  []domain.ModelBudget
}

func (m *modelBudgetFlags) String() string { return "" }

func (m *modelBudgetFlags) Set(v string) error {
	id, rest, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(id)
	if !ok || err != nil || n <= 0 {
		return fmt.Errorf("want MODEL_ID:day=N,month=N with a positive model id, got %q", v)
	}
	b := domain.ModelBudget{ModelID: n}
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(part, "=")
		tokens, err := strconv.Atoi(val)
		if !ok || err != nil || tokens <= 0 {
			return fmt.Errorf("%q: want day=N or month=N with a positive number of tokens", part)
		}
		switch k {
		case "day":
			b.TokensPerDay = &tokens
		case "month":
			b.TokensPerMonth = &tokens
		default:
			return fmt.Errorf("%q: the period must be day or month", part)
		}
	}
	m.set = true
	m.bs = append(m.bs, b)
	return nil
}

// keySettings reads the settings flags that were given on the command line.
func keySettings(fs *flag.FlagSet, weight, perDay, perMonth *int, budgets *modelBudgetFlags, noBudgets bool) (apikeys.Settings, error) {
	var st apikeys.Settings
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "weight":
			st.Weight = weight
		case "tokens-per-day":
			st.TokensPerDay = perDay
		case "tokens-per-month":
			st.TokensPerMonth = perMonth
		}
	})
	switch {
	case budgets.set && noBudgets:
		return st, errors.New("--model-budget and --no-model-budgets exclude each other")
	case budgets.set:
		st.ModelBudgets = &budgets.bs
	case noBudgets:
		empty := []domain.ModelBudget{}
		st.ModelBudgets = &empty
	}
	return st, nil
}

// settingsError names the flag behind an invalid setting.
func settingsError(cmd string, err error) error {
	var ie *apikeys.InvalidError
	if errors.As(err, &ie) {
		flagName := "--" + strings.ReplaceAll(ie.Field, "_", "-")
		if strings.HasPrefix(ie.Field, "model_budgets") {
			flagName = "--model-budget (" + ie.Field + ")"
		}
		return fmt.Errorf("apikey %s: %s %s", cmd, flagName, ie.Message)
	}
	return err
}

func optInt(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

func modelBudgetsText(bs []domain.ModelBudget) string {
	if len(bs) == 0 {
		return "-"
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		var p []string
		if b.TokensPerDay != nil {
			p = append(p, "day="+strconv.Itoa(*b.TokensPerDay))
		}
		if b.TokensPerMonth != nil {
			p = append(p, "month="+strconv.Itoa(*b.TokensPerMonth))
		}
		parts[i] = strconv.Itoa(b.ModelID) + ":" + strings.Join(p, ",")
	}
	return strings.Join(parts, " ")
}

// openStore opens (and migrates, when the configuration allows) the
// database that fs's --config names.
func openStore(ctx context.Context, fs *flag.FlagSet, args []string) (*store.Store, *config.Config, []string, error) {
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.Database.Driver == "sqlite" || cfg.Database.AutoMigrate {
		if err := st.Migrate(ctx); err != nil {
			_ = st.Close()
			return nil, nil, nil, err
		}
	}
	return st, cfg, fs.Args(), nil
}

// apikeyFlags are the flags every apikey subcommand accepts.
type apikeyFlags struct {
	fs                       *flag.FlagSet
	name, role               *string
	weight, perDay, perMonth *int
	budgets                  modelBudgetFlags
	noBudgets                *bool
}

func newAPIKeyFlags(sub string, stderr io.Writer) *apikeyFlags {
	fs := flag.NewFlagSet("apikey "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &apikeyFlags{fs: fs}
	f.name = fs.String("name", "", "who or what uses the key")
	f.role = fs.String("role", "", "admin, operator, submitter or viewer")
	f.weight = fs.Int("weight", 1, "share of a model's slots against other callers, 1..1000")
	f.perDay = fs.Int("tokens-per-day", 0, "token cap per UTC day (0: none)")
	f.perMonth = fs.Int("tokens-per-month", 0, "token cap per calendar month (0: none)")
	fs.Var(&f.budgets, "model-budget", "ID:day=N,month=N, a token cap on one model (repeatable)")
	f.noBudgets = fs.Bool("no-model-budgets", false, "remove every model cap")
	return f
}

func apikeyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(strings.TrimSuffix(apikeyUsage, "\n"))
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "create", "update", "list", "revoke":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, apikeyUsage)
		return nil
	default:
		return fmt.Errorf("unknown apikey command %q\n%s", sub, apikeyUsage)
	}
	f := newAPIKeyFlags(sub, stderr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Flags may follow the positional id: revoke 3 --config x.yaml.
	var positional []string
	if (sub == "revoke" || sub == "update") && len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		positional, args = args[:1], args[1:]
	}
	st, cfg, rest, err := openStore(ctx, f.fs, args)
	if err != nil {
		return err
	}
	defer st.Close()
	positional = append(positional, rest...)
	// Webhook secrets are sealed like provider secrets.
	if err := secrets.Resolve(cfg, newLogger(cfg, stderr)); err != nil {
		return err
	}
	kr, err := secrets.FromConfig(cfg)
	if err != nil {
		return err
	}
	svc := apikeys.New(st.Client, apikeys.WithSealer(kr.Seal))
	settings, err := keySettings(f.fs, f.weight, f.perDay, f.perMonth, &f.budgets, *f.noBudgets)
	if err != nil {
		return fmt.Errorf("apikey %s: %w", sub, err)
	}
	switch sub {
	case "create":
		return apikeyCreate(ctx, svc, *f.name, *f.role, settings, stdout)
	case "update":
		return apikeyUpdate(ctx, svc, positional, settings, stdout)
	case "list":
		return apikeyList(ctx, svc, stdout)
	default:
		return apikeyRevoke(ctx, svc, positional, stdout)
	}
}

// keyID reads the one positional key id of update and revoke.
func keyID(sub string, positional []string) (int, error) {
	if len(positional) != 1 {
		return 0, fmt.Errorf("apikey %s takes one key id\n%s", sub, apikeyUsage)
	}
	id, err := strconv.Atoi(positional[0])
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("apikey %s: id must be a positive integer, got %q", sub, positional[0])
	}
	return id, nil
}

func apikeyCreate(ctx context.Context, svc *apikeys.Service, name, role string, settings apikeys.Settings, stdout io.Writer) error {
	if settings.ModelBudgets != nil && len(*settings.ModelBudgets) == 0 {
		settings.ModelBudgets = nil
	}
	c, err := svc.CreateWith(ctx, name, role, settings)
	if err != nil {
		return settingsError("create", err)
	}
	return showCreated(stdout, c)
}

// showCreated prints a new key's secrets, which are shown this once: when
// they cannot be written the command fails, so that a script does not go on
// without them.
func showCreated(stdout io.Writer, c apikeys.Created) error {
	_, err := fmt.Fprintf(stdout, "created API key %d (%s, role %s, weight %d)\n\n  %s\n\n", c.Key.ID, c.Key.Name, c.Key.Role, c.Key.Weight, c.Secret)
	if err == nil {
		_, err = fmt.Fprintf(stdout, "webhook secret (signs its tasks' completion webhooks, docs/webhooks.md):\n\n  %s\n\n", c.WebhookSecret)
	}
	if err != nil {
		return fmt.Errorf("apikey create: key %d was created but its secrets could not be shown (%w); revoke it and create another", c.Key.ID, err)
	}
	fmt.Fprintln(stdout, "Store them now: they are not shown again. Send the key as: Authorization: Bearer <key>")
	return nil
}

func apikeyUpdate(ctx context.Context, svc *apikeys.Service, positional []string, settings apikeys.Settings, stdout io.Writer) error {
	id, err := keyID("update", positional)
	if err != nil {
		return err
	}
	if settings == (apikeys.Settings{}) {
		return fmt.Errorf("apikey update: give at least one of --weight, --tokens-per-day, --tokens-per-month, --model-budget, --no-model-budgets\n%s", apikeyUsage)
	}
	k, err := svc.Update(ctx, id, settings)
	if err != nil {
		return settingsError("update", err)
	}
	fmt.Fprintf(stdout, "updated API key %d (%s): weight %d, tokens per day %s, per month %s, model caps %s\n",
		k.ID, k.Name, k.Weight, optInt(k.TokensPerDay), optInt(k.TokensPerMonth), modelBudgetsText(k.ModelBudgets))
	return nil
}

func apikeyList(ctx context.Context, svc *apikeys.Service, stdout io.Writer) error {
	ks, err := svc.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tPREFIX\tWEIGHT\tTOKENS/DAY\tTOKENS/MONTH\tMODEL CAPS\tCREATED\tLAST USED\tREVOKED")
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, k := range ks {
		created := k.CreatedAt
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.Prefix, k.Weight,
			optInt(k.TokensPerDay), optInt(k.TokensPerMonth), modelBudgetsText(k.ModelBudgets), ts(&created), ts(k.LastUsedAt), ts(k.RevokedAt))
	}
	return tw.Flush()
}

func apikeyRevoke(ctx context.Context, svc *apikeys.Service, positional []string, stdout io.Writer) error {
	id, err := keyID("revoke", positional)
	if err != nil {
		return err
	}
	k, err := svc.Revoke(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked API key %d (%s) at %s\n", k.ID, k.Name, k.RevokedAt.UTC().Format(time.RFC3339))
	return nil
}

const secretsUsage = `usage:
  llm-scheduler secrets rewrap [--config FILE]
      re-encrypt every model's provider credentials with auth.encryption_key
      (after a rotation, or after turning encryption on); see docs/security.md
  llm-scheduler secrets genkey
      print a new random encryption key (base64, 32 bytes)
`

func secretsCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(strings.TrimSuffix(secretsUsage, "\n"))
	}
	switch args[0] {
	case "genkey":
		fmt.Fprintln(stdout, secrets.GenerateKey())
		return nil
	case "rewrap":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, secretsUsage)
		return nil
	default:
		return fmt.Errorf("unknown secrets command %q\n%s", args[0], secretsUsage)
	}
	fs := flag.NewFlagSet("secrets rewrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := loadConfig(fs, args[1:])
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if err := secrets.Resolve(cfg, log); err != nil {
		return err
	}
	kr, err := secrets.FromConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	n, err := secrets.Rewrap(ctx, st.Client, kr, scheduler.IsSecretKey)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-encrypted the secrets of %d models with key %s\n", n, kr.KeyID())
	k, err := secrets.RewrapWebhookSecrets(ctx, st.Client, kr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "re-encrypted the webhook secrets of %d API keys with key %s\n", k, kr.KeyID())
	return nil
}
