package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/llmsched/llm-scheduler/apikeys"
	"github.com/llmsched/llm-scheduler/scheduler"
	"github.com/llmsched/llm-scheduler/secrets"
	"github.com/llmsched/llm-scheduler/store"
)

func init() {
	extraCommands["apikey"] = apikeyCommand
	extraCommands["secrets"] = secretsCommand
}

const apikeyUsage = `usage:
  llm-scheduler apikey create --name NAME --role admin|operator|submitter|viewer [--config FILE]
  llm-scheduler apikey list [--config FILE]
  llm-scheduler apikey revoke ID [--config FILE]

The key is printed once by create; only its SHA-256 is stored.
`

// openStore opens (and migrates, when the configuration allows) the
// database that fs's --config names.
func openStore(ctx context.Context, fs *flag.FlagSet, args []string) (*store.Store, []string, error) {
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Database.Driver == "sqlite" || cfg.Database.AutoMigrate {
		if err := st.Migrate(ctx); err != nil {
			_ = st.Close()
			return nil, nil, err
		}
	}
	return st, fs.Args(), nil
}

func apikeyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(apikeyUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("apikey "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "who or what uses the key")
	role := fs.String("role", "", "admin, operator, submitter or viewer")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch sub {
	case "create", "list", "revoke":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, apikeyUsage)
		return nil
	default:
		return fmt.Errorf("unknown apikey command %q\n%s", sub, apikeyUsage)
	}
	// Flags may follow the positional id: revoke 3 --config x.yaml.
	var positional []string
	if sub == "revoke" && len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		positional, args = args[:1], args[1:]
	}
	st, rest, err := openStore(ctx, fs, args)
	if err != nil {
		return err
	}
	defer st.Close()
	positional = append(positional, rest...)
	svc := apikeys.New(st.Client)
	switch sub {
	case "create":
		c, err := svc.Create(ctx, *name, *role)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created API key %d (%s, role %s)\n\n  %s\n\n", c.Key.ID, c.Key.Name, c.Key.Role, c.Secret)
		fmt.Fprintln(stdout, "Store it now: it is not shown again. Send it as: Authorization: Bearer <key>")
		return nil
	case "list":
		ks, err := svc.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tPREFIX\tCREATED\tLAST USED\tREVOKED")
		ts := func(t *time.Time) string {
			if t == nil {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		}
		for _, k := range ks {
			created := k.CreatedAt
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.Prefix, ts(&created), ts(k.LastUsedAt), ts(k.RevokedAt))
		}
		return tw.Flush()
	default: // revoke
		if len(positional) != 1 {
			return fmt.Errorf("apikey revoke takes one key id\n%s", apikeyUsage)
		}
		id, err := strconv.Atoi(positional[0])
		if err != nil || id <= 0 {
			return fmt.Errorf("apikey revoke: id must be a positive integer, got %q", positional[0])
		}
		k, err := svc.Revoke(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked API key %d (%s) at %s\n", k.ID, k.Name, k.RevokedAt.UTC().Format(time.RFC3339))
		return nil
	}
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
		return errors.New(secretsUsage)
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
	return nil
}
