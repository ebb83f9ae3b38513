package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
	"github.com/llmsched/llm-scheduler/server"
)

const usage = `usage: llm-scheduler [command] [flags]

commands:
  serve     run the scheduler (default); --role api|worker|all
  task      submit, list, get, watch, cancel or retry tasks on a running scheduler
  model     list, create or switch models online/offline on a running scheduler
  migrate   create or update the database schema, then exit
  bench     measure throughput and latency against raw asynq
  apikey    create, list or revoke API keys
  secrets   re-encrypt provider credentials after a key rotation (rewrap)
  version   print the version

common flags:
  --config FILE   read configuration from FILE (default: none, embedded mode
                  unless DB_*/REDIS_* environment variables are set)
`

// Version is the binary's version; main sets it from its own, which the
// build sets with -ldflags "-X main.version=...".
var Version = "dev"

// Run runs the command args name (serve when they name none) and returns
// the process's exit code, any error already printed to stderr.
func Run(args []string, stdout, stderr io.Writer) int {
	err := run(args, stdout, stderr)
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	fmt.Fprintln(stderr, "llm-scheduler:", err)
	return 1
}

func run(args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "migrate":
		return migrate(args, stdout, stderr)
	case "task", "model":
		return clientCommand(cmd, args, stdout, stderr)
	case "apikey":
		return apikeyCommand(args, stdout, stderr)
	case "secrets":
		return secretsCommand(args, stdout, stderr)
	case "bench":
		return benchCommand(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "llm-scheduler %s\n", Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// loadConfig parses --config and loads the configuration.
func loadConfig(fs *flag.FlagSet, args []string) (*config.Config, error) {
	path := fs.String("config", os.Getenv("CONFIG_FILE"), "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg, err := config.LoadLookup(*path, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if cfg.App.Version == "" || Version != "dev" {
		cfg.App.Version = Version
	}
	return cfg, nil
}

// newLogger builds the process logger: JSON in production, text otherwise.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Log.Format
	if format == "" {
		format = "text"
		if cfg.Production() {
			format = "json"
		}
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	role := fs.String("role", "all", "api, worker or all")
	metricsAddr := fs.String("metrics-addr", os.Getenv("METRICS_ADDR"),
		"also serve /metrics, without auth, on this address (for worker processes, which have no HTTP server)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	r, err := app.ParseRole(*role)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	if cfg.Embedded() {
		log.Info("running on the embedded default: SQLite at "+cfg.Database.SQLitePath+" and an in-process Redis; nothing is shared with other processes",
			"mode", "embedded")
	} else {
		log.Info("running on external services", "mode", "external", "database", cfg.Database.Driver,
			"db_host", cfg.Database.Host, "redis_host", cfg.Redis.Host)
	}
	if !cfg.AuthEnabled() {
		log.Warn("AUTHENTICATION IS OFF: every request acts as admin. Set app.env=production or auth.enabled=true to require API keys.",
			"listen_host", cfg.Server.Host)
		if ip := net.ParseIP(cfg.Server.Host); ip == nil || !ip.IsLoopback() {
			log.Warn("the server listens on " + cfg.Server.Host + " WITHOUT AUTHENTICATION: anyone who can reach it is admin")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.New(ctx, cfg, r, log)
	if err != nil {
		return err
	}
	if err := a.Start(ctx, server.New, ""); err != nil {
		return errors.Join(err, a.Shutdown(context.Background()))
	}
	if *metricsAddr != "" {
		if err := a.ServeMetrics(*metricsAddr); err != nil {
			return errors.Join(fmt.Errorf("metrics listener: %w", err), a.Shutdown(context.Background()))
		}
	}
	log.Info("llm-scheduler started", "role", r, "addr", a.Addr(), "version", cfg.App.Version)
	<-ctx.Done()
	log.Info("shutting down: intake stopped, waiting for running tasks", "grace", cfg.Server.ShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace.D()+15*time.Second)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func migrate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema of %s database is up to date\n", cfg.Database.Driver)
	return nil
}
