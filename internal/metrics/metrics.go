package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/events"
	"github.com/llmsched/llm-scheduler/internal/providers"
	"github.com/llmsched/llm-scheduler/jobs"
)

const namespace = "llmsched"

// Metrics is one process's instrumentation.
type Metrics struct {
	// Registry holds every collector of this process.
	Registry *prometheus.Registry

	pickup     *prometheus.HistogramVec
	run        *prometheus.HistogramVec
	provErrors *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	retries    *prometheus.CounterVec
	outcomes   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
}

// Options configure New.
type Options struct {
	// DB, when set, adds the database-derived gauges (api processes); the
	// collector only reads it.
	DB *ent.Client
	// Log receives scrape errors.
	Log *slog.Logger
	// RedisCommands, when set, is the count of Redis commands the process
	// sent (broker.Broker.Commands), exported as redis_commands_total.
	RedisCommands func() int64
}

// New builds a process's metrics and registers them.
func New(o Options) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		pickup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "task_pickup_latency_seconds",
			Help:    "Time from a task being due (created, or its retry backoff over) to its attempt starting.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"model_id"}),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "task_run_duration_seconds",
			Help:    "Duration of one attempt's provider call, by outcome (completed, failed, cancelled, interrupted).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"model_id", "outcome"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "attempts_total",
			Help: "Finished attempts, by outcome.",
		}, []string{"model_id", "outcome"}),
		provErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "provider_errors_total",
			Help: "Failed attempts by error kind (retryable, permanent, rate_limited, timeout, ...).",
		}, []string{"model_id", "kind"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokens_total",
			Help: "Tokens used, as the provider reported them, by kind (prompt, completion).",
		}, []string{"model_id", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "task_retries_total",
			Help: "Tasks sent back to pending: automatic (after a failed or interrupted attempt) or manual (retry of a failed or cancelled task).",
		}, []string{"model_id", "trigger"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rejected_submissions_total",
			Help: "Task submissions refused, by API (rest, graphql) and error code (QUEUE_FULL, BAD_USER_INPUT, ...).",
		}, []string{"api", "code"}),
	}
	m.Registry.MustRegister(
		m.pickup, m.run, m.outcomes, m.provErrors, m.tokens, m.retries, m.rejected,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if o.RedisCommands != nil {
		m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "redis_commands_total",
			Help: "Redis commands this process sent (each command of a pipeline counts, a script call counts once).",
		}, func() float64 { return float64(o.RedisCommands()) }))
	}
	if o.DB != nil {
		log := o.Log
		if log == nil {
			log = slog.Default()
		}
		m.Registry.MustRegister(&dbCollector{db: o.DB, log: log})
	}
	return m
}

func id(modelID int) string { return strconv.Itoa(modelID) }

// Rejected counts one refused task submission on api (rest, graphql) with
// its error code. A nil Metrics counts nothing (a process or test without
// metrics).
func (m *Metrics) Rejected(api, code string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(api, code).Inc()
}

// WorkerHooks observe a worker's attempts.
func (m *Metrics) WorkerHooks() jobs.Hooks {
	return jobs.Hooks{
		Picked: func(modelID int, wait time.Duration) {
			m.pickup.WithLabelValues(id(modelID)).Observe(max(wait, 0).Seconds())
		},
		Finished: func(modelID int, outcome, kind string, run time.Duration, u providers.Usage) {
			mid := id(modelID)
			m.run.WithLabelValues(mid, outcome).Observe(run.Seconds())
			m.outcomes.WithLabelValues(mid, outcome).Inc()
			if outcome == "failed" && kind != "" {
				m.provErrors.WithLabelValues(mid, kind).Inc()
			}
			if u.PromptTokens > 0 {
				m.tokens.WithLabelValues(mid, "prompt").Add(float64(u.PromptTokens))
			}
			if u.CompletionTokens > 0 {
				m.tokens.WithLabelValues(mid, "completion").Add(float64(u.CompletionTokens))
			}
		},
	}
}

// ObserveTaskEvent counts retries from the transitions this process
// publishes (pass it to events.Bus.OnPublish).
func (m *Metrics) ObserveTaskEvent(e events.TaskEvent) {
	if e.To != domain.StatusPending {
		return
	}
	switch e.From {
	case domain.StatusRunning:
		m.retries.WithLabelValues(id(e.ModelID), "automatic").Inc()
	case domain.StatusFailed, domain.StatusCancelled:
		m.retries.WithLabelValues(id(e.ModelID), "manual").Inc()
	}
}

// Handler serves the registry in the Prometheus text format. A failing
// database query drops only its own series from the scrape.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Registry: m.Registry,
	})
}

// Serve serves /metrics alone on addr until ctx ends: for worker processes,
// which have no HTTP server of their own. Bind it to a private network;
// it has no authentication.
func (m *Metrics) Serve(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // best effort at exit
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return nil
}
