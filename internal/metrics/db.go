package metrics

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

var (
	tasksDesc = prometheus.NewDesc(namespace+"_tasks",
		"Tasks in the database by status and model (read on each scrape).",
		[]string{"model_id", "status"}, nil)
	queueDesc = prometheus.NewDesc(namespace+"_queue_depth",
		"Pending tasks by model and priority (3 high, 2 medium, 1 low).",
		[]string{"model_id", "priority"}, nil)
	modelDesc = prometheus.NewDesc(namespace+"_model_info",
		"One series per model that is not deleted, to join names onto model_id; the value is always 1.",
		[]string{"model_id", "name", "type", "status"}, nil)
	maxWorkersDesc = prometheus.NewDesc(namespace+"_model_max_workers",
		"A model's max_workers: how many of its tasks may run at once across the cluster.",
		[]string{"model_id"}, nil)
	scrapeErrDesc = prometheus.NewDesc(namespace+"_database_scrape_error",
		"1 when reading the database gauges failed on this scrape.", nil, nil)
)

// dbCollector reads task counts on each scrape with two GROUP BY queries
// that the task indexes (model_id, status, priority, ...) answer.
type dbCollector struct {
	db  *ent.Client
	log *slog.Logger
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tasksDesc, queueDesc, modelDesc, maxWorkersDesc, scrapeErrDesc} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	failed := 0.0
	if err := c.collect(ctx, ch); err != nil {
		c.log.Warn("metrics: read database gauges", "err", err)
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, failed)
}

func (c *dbCollector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	db := c.db
	models, err := db.Model.Query().Where(model.DeletedAtIsNil()).All(ctx)
	if err != nil {
		return err
	}
	var byStatus []struct {
		ModelID int               `json:"model_id"`
		Status  domain.TaskStatus `json:"status"`
		Count   int               `json:"count"`
	}
	if err := db.Task.Query().GroupBy(task.FieldModelID, task.FieldStatus).
		Aggregate(ent.Count()).Scan(ctx, &byStatus); err != nil {
		return err
	}
	var byPrio []struct {
		ModelID  int `json:"model_id"`
		Priority int `json:"priority"`
		Count    int `json:"count"`
	}
	if err := db.Task.Query().Where(task.StatusEQ(domain.StatusPending)).
		GroupBy(task.FieldModelID, task.FieldPriority).Aggregate(ent.Count()).Scan(ctx, &byPrio); err != nil {
		return err
	}
	// Every live model reports every status and priority, zeros included,
	// so that rates and alerts see series from the start.
	type sk struct {
		m int
		s domain.TaskStatus
	}
	type pk struct{ m, p int }
	statuses := map[sk]int{}
	prios := map[pk]int{}
	for _, m := range models {
		for _, s := range domain.TaskStatuses() {
			statuses[sk{m.ID, s}] = 0
		}
		for _, p := range []int{1, 2, 3} {
			prios[pk{m.ID, p}] = 0
		}
		ch <- prometheus.MustNewConstMetric(modelDesc, prometheus.GaugeValue, 1,
			id(m.ID), m.Name, string(m.Type), string(m.Status))
		ch <- prometheus.MustNewConstMetric(maxWorkersDesc, prometheus.GaugeValue, float64(m.MaxWorkers), id(m.ID))
	}
	for _, r := range byStatus {
		statuses[sk{r.ModelID, r.Status}] += r.Count
	}
	for _, r := range byPrio {
		prios[pk{r.ModelID, r.Priority}] += r.Count
	}
	for k, n := range statuses {
		ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(n), id(k.m), string(k.s))
	}
	for k, n := range prios {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), id(k.m), strconv.Itoa(k.p))
	}
	return nil
}
