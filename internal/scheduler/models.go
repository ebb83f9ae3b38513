package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/secrets"
)

// ModelAdmin registers, changes and deletes models, and shows their
// configs with secrets masked.
type ModelAdmin struct {
	db   *ent.Client
	disp Dispatcher
	cfg  *config.Config
	log  *slog.Logger
	now  func() time.Time
	// models is the cache intake reads models through; a change drops the
	// model from it.
	models *modelCache
	counts *taskCounts
}

// NewModel is a request to register a model.
type NewModel struct {
	Name        string         `json:"name"`
	Type        string         `json:"type"`
	Config      map[string]any `json:"config"`
	MaxWorkers  *int           `json:"max_workers,omitempty"`
	Status      string         `json:"status,omitempty"`
	Description string         `json:"description,omitempty"`
	Fallbacks   []int          `json:"fallbacks,omitempty"`
	// InputPrice and OutputPrice: what a million input and output tokens
	// cost (nil: free).
	InputPrice  *float64 `json:"input_price,omitempty"`
	OutputPrice *float64 `json:"output_price,omitempty"`
}

// ModelPatch changes some fields of a model; nil fields stay.
type ModelPatch struct {
	Name        *string        `json:"name,omitempty"`
	Config      map[string]any `json:"config,omitempty"`
	MaxWorkers  *int           `json:"max_workers,omitempty"`
	Status      *string        `json:"status,omitempty"`
	Description *string        `json:"description,omitempty"`
	Fallbacks   *[]int         `json:"fallbacks,omitempty"`
	InputPrice  *float64       `json:"input_price,omitempty"`
	OutputPrice *float64       `json:"output_price,omitempty"`
}

// CreateModel registers a model.
func (s *ModelAdmin) CreateModel(ctx context.Context, n NewModel) (*ent.Model, error) {
	t, err := domain.ParseModelType(n.Type)
	if err != nil {
		return nil, Invalid("type", "must be one of %s, got %q", joinTypes(domain.ModelTypes()), n.Type)
	}
	if err := s.validateName(ctx, n.Name, 0); err != nil {
		return nil, err
	}
	if n.Config == nil {
		n.Config = map[string]any{}
	}
	if err := validateConfig(t, n.Config); err != nil {
		return nil, err
	}
	workers := s.cfg.Worker.DefaultWorkers
	if n.MaxWorkers != nil {
		workers = *n.MaxWorkers
	}
	if err := s.validateMaxWorkers(workers); err != nil {
		return nil, err
	}
	status := domain.ModelOnline
	if n.Status != "" {
		if status, err = domain.ParseModelStatus(n.Status); err != nil {
			return nil, Invalid("status", "must be online or offline, got %q", n.Status)
		}
	}
	if len(n.Description) > 1024 {
		return nil, Invalid("description", "must be at most 1024 characters")
	}
	if err := s.validateFallbacks(ctx, n.Fallbacks, 0); err != nil {
		return nil, err
	}
	if err := validatePrices(n.InputPrice, n.OutputPrice); err != nil {
		return nil, err
	}
	sealed, err := secrets.SealModelConfig(s.cfg, n.Config, IsSecretKey)
	if err != nil {
		return nil, fmt.Errorf("encrypt model secrets: %w", err)
	}
	c := s.db.Model.Create().SetName(strings.TrimSpace(n.Name)).SetType(t).SetConfig(sealed).
		SetMaxWorkers(workers).SetStatus(status).SetDescription(n.Description).
		SetNillableInputPrice(n.InputPrice).SetNillableOutputPrice(n.OutputPrice)
	if len(n.Fallbacks) > 0 {
		c.SetFallbacks(n.Fallbacks)
	}
	m, err := c.Save(ctx)
	return m, dbErr(err, "model", 0)
}

// ListModels returns the models that are not deleted, by id.
func (s *ModelAdmin) ListModels(ctx context.Context) ([]*ent.Model, error) {
	ms, err := s.db.Model.Query().Where(model.DeletedAtIsNil()).Order(ent.Asc(model.FieldID)).All(ctx)
	return ms, dbErr(err, "model", 0)
}

// GetModel returns one model that is not deleted.
func (s *ModelAdmin) GetModel(ctx context.Context, id int) (*ent.Model, error) {
	return liveModel(ctx, s.db, id)
}

// liveModel is GetModel, for the fallback route too.
func liveModel(ctx context.Context, db *ent.Client, id int) (*ent.Model, error) {
	m, err := db.Model.Get(ctx, id)
	if err != nil {
		return nil, dbErr(err, "model", id)
	}
	if m.DeletedAt != nil {
		return nil, NotFound("model", id)
	}
	return m, nil
}

// UpdateModel changes a model. Secret config values sent back masked (as
// the API shows them) keep their stored value.
func (s *ModelAdmin) UpdateModel(ctx context.Context, id int, p ModelPatch) (*ent.Model, error) {
	m, err := s.GetModel(ctx, id)
	if err != nil {
		return nil, err
	}
	u := m.Update()
	if p.Name != nil {
		if err := s.validateName(ctx, *p.Name, id); err != nil {
			return nil, err
		}
		u.SetName(strings.TrimSpace(*p.Name))
	}
	if p.Config != nil {
		// Secrets sent back masked keep their stored (sealed) value; the
		// provider validates the opened config, the database gets it sealed.
		stored, err := secrets.OpenModelConfig(s.cfg, m.Config)
		if err != nil {
			return nil, fmt.Errorf("decrypt model %d secrets: %w", id, err)
		}
		opened, err := UnmaskConfig(p.Config, stored)
		if err != nil {
			return nil, err
		}
		if err := validateConfig(m.Type, opened); err != nil {
			return nil, err
		}
		sealed, err := secrets.SealModelConfig(s.cfg, opened, IsSecretKey)
		if err != nil {
			return nil, fmt.Errorf("encrypt model secrets: %w", err)
		}
		u.SetConfig(sealed)
	}
	if p.MaxWorkers != nil {
		if err := s.validateMaxWorkers(*p.MaxWorkers); err != nil {
			return nil, err
		}
		u.SetMaxWorkers(*p.MaxWorkers)
	}
	if p.Status != nil {
		st, err := domain.ParseModelStatus(*p.Status)
		if err != nil {
			return nil, Invalid("status", "must be online or offline, got %q", *p.Status)
		}
		u.SetStatus(st)
	}
	if p.Description != nil {
		if len(*p.Description) > 1024 {
			return nil, Invalid("description", "must be at most 1024 characters")
		}
		u.SetDescription(*p.Description)
	}
	if p.Fallbacks != nil {
		if err := s.validateFallbacks(ctx, *p.Fallbacks, id); err != nil {
			return nil, err
		}
		u.SetFallbacks(*p.Fallbacks)
	}
	if err := validatePrices(p.InputPrice, p.OutputPrice); err != nil {
		return nil, err
	}
	u.SetNillableInputPrice(p.InputPrice).SetNillableOutputPrice(p.OutputPrice)
	m, err = u.Save(ctx)
	s.models.forget(id)
	if err != nil {
		return nil, dbErr(err, "model", id)
	}
	if err := s.disp.Pump(ctx, m); err != nil {
		s.log.Warn("dispatch after model update; the reconciler will retry", "model_id", id, "err", err)
	}
	return m, nil
}

// SetModelStatus switches a model online or offline. Tasks of an offline
// model wait as pending and start when it is online again; running ones
// finish.
func (s *ModelAdmin) SetModelStatus(ctx context.Context, id int, status string) (*ent.Model, error) {
	if status == "" {
		return nil, Invalid("status", "is required: online or offline")
	}
	return s.UpdateModel(ctx, id, ModelPatch{Status: &status})
}

// DeleteModel deletes a model that has no unfinished tasks.
func (s *ModelAdmin) DeleteModel(ctx context.Context, id int) (*ent.Model, error) {
	m, err := s.GetModel(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := s.db.Task.Query().Where(task.ModelID(id), task.StatusIn(domain.StatusPending, domain.StatusRunning)).Count(ctx)
	if err != nil {
		return nil, dbErr(err, "model", id)
	}
	if n > 0 {
		return nil, Conflict("model %d has %d unfinished tasks; cancel them or wait before deleting it", id, n)
	}
	m, err = m.Update().SetDeletedAt(s.now()).SetStatus(domain.ModelOffline).Save(ctx)
	s.models.forget(id)
	return m, dbErr(err, "model", id)
}

// MaskedConfig is a model's config as clients see it: secrets decrypted,
// then masked ("...abcd"), so people can tell keys apart without ever
// reading one. If the secrets cannot be opened (a lost key) they are masked
// as stored.
func (s *ModelAdmin) MaskedConfig(m *ent.Model) map[string]any {
	opened, err := secrets.OpenModelConfig(s.cfg, m.Config)
	if err != nil {
		s.log.Warn("model secrets cannot be decrypted; showing them fully masked", "model_id", m.ID, "err", err)
		return MaskConfig(m.Config)
	}
	return MaskConfig(opened)
}

// ModelLoad counts a model's unfinished tasks.
type ModelLoad struct {
	Running int `json:"running"`
	Queued  int `json:"queued"`
}

// ModelLoads returns running and queued counts of every model with work
// (cached when costly, see counts.go; callers must not change the map).
func (s *ModelAdmin) ModelLoads(ctx context.Context) (map[int]ModelLoad, error) {
	return s.counts.modelLoads(ctx)
}
