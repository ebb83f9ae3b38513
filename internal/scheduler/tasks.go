package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/outbound"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// Tasks is task intake and the task queries: validation, backpressure,
// budgets and idempotency on the way in; listing, reading, cancelling and
// retrying; scheduled tasks coming due (tasks_schedule.go); callback URLs
// and webhook deliveries (tasks_webhooks.go); the API keys tasks are
// submitted with (tasks_callers.go); why a task waits (tasks_explain.go).
type Tasks struct {
	m    *machine
	db   *ent.Client
	disp Dispatcher
	cfg  *config.Config
	log  *slog.Logger
	now  func() time.Time
	// models, backlog and keys keep intake off the database: see
	// modelcache.go, backlog.go and keycache.go.
	models  *modelCache
	backlog *backlog
	keys    *keyCache
	// counts answer the task list's total (counts.go).
	counts *taskCounts
	usage  usageReader
	// output reads what running attempts streamed so far (nil: the bus
	// cannot).
	output OutputReader
	// creates batches single task inserts (group.go).
	creates *group[createReq, *ent.Task]
	// onScheduled learns the run_at of every scheduled task this process
	// creates (the due scanner's timer, tasks_schedule.go).
	onScheduled atomic.Pointer[func(time.Time)]
	// hookPolicy checks callback URLs (tasks_webhooks.go).
	hookPolicy atomic.Pointer[outbound.Policy]
}

// tasksDeps are what newTasks needs besides the machine's own.
type tasksDeps struct {
	m       *machine
	bg      *background
	disp    Dispatcher
	cfg     *config.Config
	models  *modelCache
	backlog *backlog
	counts  *taskCounts
	usage   usageReader
	output  OutputReader
}

func newTasks(d tasksDeps) *Tasks {
	s := &Tasks{m: d.m, db: d.m.db, disp: d.disp, cfg: d.cfg, log: d.m.log, now: d.m.now,
		models: d.models, backlog: d.backlog, keys: newKeyCache(), counts: d.counts, usage: d.usage, output: d.output}
	s.creates = newGroup(d.bg, groupLanes, groupMax, s.insertTasks)
	return s
}

// NewTask is a request to create a task. Type and Priority arrive as the
// client wrote them and are validated here.
type NewTask struct {
	ModelID        int            `json:"model_id"`
	Type           string         `json:"type"`
	Input          string         `json:"input"`
	Priority       *int           `json:"priority,omitempty"`
	Params         map[string]any `json:"params,omitempty"`
	MaxRetries     *int           `json:"max_retries,omitempty"`
	TimeoutSeconds *int           `json:"timeout_seconds,omitempty"`
	// RunAt asks the task to run at a time (a past one means now);
	// DelaySeconds asks it to run that many seconds from now. At most one.
	RunAt        *time.Time `json:"run_at,omitempty"`
	DelaySeconds *int       `json:"delay_seconds,omitempty"`
	// CallbackURL receives a signed POST when the task reaches completed,
	// failed or cancelled (docs/webhooks.md). Default: the API key's.
	CallbackURL *string `json:"callback_url,omitempty"`
	// IdempotencyKey makes a repeated request return the first task.
	IdempotencyKey string `json:"-"`
	// Caller labels who submitted the task where no API key says it (auth
	// off): 1 to 128 printable characters; default "anonymous".
	Caller string `json:"caller,omitempty"`
	// APIKeyID records the key that submitted the task; the key's name
	// becomes the task's caller, its weight the task's weight.
	APIKeyID *int `json:"-"`
	// OnStored, when set, is called with the task once it is stored and
	// before it is queued, so that a caller can subscribe to its events
	// before any can happen (the OpenAI front door follows its task so).
	// It must not block. An idempotent replay does not call it.
	OnStored func(t *ent.Task) `json:"-"`
}

// hash digests the fields that define the request, to tell a replay from a
// different request reusing an idempotency key.
func (n NewTask) hash() string {
	raw, _ := json.Marshal(struct {
		M int
		T string
		I string
		P *int
		X map[string]any
		R *int
		S *int
		A *time.Time
		D *int
		C string
		U *string
	}{n.ModelID, n.Type, n.Input, n.Priority, n.Params, n.MaxRetries, n.TimeoutSeconds, n.RunAt, n.DelaySeconds, n.Caller, n.CallbackURL})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// scopedKey is the idempotency key as stored: prefixed with its caller
// (the API key's id, or "anon" without auth), so one caller's key never
// matches another's task. A long key is stored as its SHA-256.
func (n NewTask) scopedKey() string {
	scope := "anon"
	if n.APIKeyID != nil {
		scope = "k" + strconv.Itoa(*n.APIKeyID)
	}
	k := scope + ":" + n.IdempotencyKey
	if len(k) > 255 {
		sum := sha256.Sum256([]byte(n.IdempotencyKey))
		k = scope + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return k
}

// CreateTask validates, applies backpressure and idempotency, stores the
// task as pending and hands it to the dispatcher. Nothing is written when
// validation fails.
func (s *Tasks) CreateTask(ctx context.Context, n NewTask) (*ent.Task, error) {
	v, err := s.validateTask(n, "")
	if err != nil {
		return nil, err
	}
	if v.IdempotencyKey != "" {
		if t, err := s.replay(ctx, v.NewTask); t != nil || err != nil {
			return t, err
		}
	}
	if err := s.submitter(ctx, &v); err != nil {
		return nil, err
	}
	if err := s.resolveCallback(&v, "callback_url"); err != nil {
		return nil, err
	}
	m, err := s.loadLiveModel(ctx, v.ModelID, "model_id")
	if err != nil {
		return nil, err
	}
	if err := checkModelLimits(m, v.Params, "params"); err != nil {
		return nil, err
	}
	if err := s.checkBudget(ctx, v.key, m.ID, providers.EstimateTokens(v.Input)); err != nil {
		return nil, err
	}
	if err := s.checkBackpressure(ctx, m.ID, 1); err != nil {
		return nil, err
	}
	req := createReq{v: v, m: m}
	if v.IdempotencyKey == "" {
		// Shares its INSERT and its slot call with concurrent submissions.
		return s.creates.do(ctx, req)
	}
	// Alone: a duplicate key must fail only its own INSERT.
	r := s.insertTasks(ctx, []createReq{req})[0]
	if ent.IsConstraintError(r.err) {
		// A concurrent request with the same key won the insert.
		if t, rerr := s.replay(ctx, v.NewTask); t != nil || rerr != nil {
			return t, rerr
		}
	}
	return r.out, r.err
}

// replay returns the task created earlier with the same idempotency key, or
// a CONFLICT error if that task was created from a different request.
func (s *Tasks) replay(ctx context.Context, n NewTask) (*ent.Task, error) {
	t, err := s.db.Task.Query().Where(task.IdempotencyKey(n.scopedKey())).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr(err, "task", 0)
	}
	if t.RequestHash != n.hash() {
		return nil, Conflict("idempotency key %q was already used for task %d with a different request", n.IdempotencyKey, t.ID)
	}
	return t, nil
}

// CreateTasks creates a batch all-or-nothing: if any input is invalid, or
// the batch would overflow the queue, nothing is written.
func (s *Tasks) CreateTasks(ctx context.Context, ns []NewTask) ([]*ent.Task, error) {
	if len(ns) == 0 {
		return nil, Invalid("inputs", "must hold at least one task")
	}
	if len(ns) > s.cfg.Queue.MaxBatchSize {
		return nil, Invalid("inputs", "holds %d tasks, over the limit (queue.max_batch_size) of %d", len(ns), s.cfg.Queue.MaxBatchSize)
	}
	vs, models, err := s.validateBatch(ctx, ns)
	if err != nil {
		return nil, err
	}
	if err := s.checkBatchLimits(ctx, vs); err != nil {
		return nil, err
	}
	created, err := s.insertBatch(ctx, vs)
	if err != nil {
		return nil, err
	}
	byModel := map[int][]*ent.Task{}
	s.m.publishCreatedMany(ctx, created)
	for i, t := range created {
		if ns[i].OnStored != nil {
			ns[i].OnStored(t)
		}
		if t.Scheduled {
			s.noteScheduled(*t.RunAt)
			continue
		}
		byModel[t.ModelID] = append(byModel[t.ModelID], t)
	}
	for id, ts := range byModel {
		if err := s.disp.AdmitMany(ctx, ts, models[id]); err != nil {
			s.log.Warn("admit batch failed; the reconciler will retry", "model_id", id, "tasks", len(ts), "err", err)
		}
	}
	return created, nil
}

// validateBatch validates every task of a batch as CreateTask does, and
// loads the models they name.
func (s *Tasks) validateBatch(ctx context.Context, ns []NewTask) ([]validated, map[int]*ent.Model, error) {
	vs := make([]validated, len(ns))
	models := map[int]*ent.Model{}
	for i, n := range ns {
		if n.IdempotencyKey != "" {
			return nil, nil, Invalid(fmt.Sprintf("inputs[%d].idempotencyKey", i), "is not supported in a batch")
		}
		v, err := s.validateTask(n, fmt.Sprintf("inputs[%d].", i))
		if err != nil {
			return nil, nil, err
		}
		if err := s.submitter(ctx, &v); err != nil {
			return nil, nil, err
		}
		if err := s.resolveCallback(&v, fmt.Sprintf("inputs[%d].callback_url", i)); err != nil {
			return nil, nil, err
		}
		vs[i] = v
		if _, ok := models[v.ModelID]; !ok {
			m, err := s.loadLiveModel(ctx, v.ModelID, fmt.Sprintf("inputs[%d].model_id", i))
			if err != nil {
				return nil, nil, err
			}
			models[v.ModelID] = m
		}
		if err := checkModelLimits(models[v.ModelID], v.Params, fmt.Sprintf("inputs[%d].params", i)); err != nil {
			return nil, nil, err
		}
	}
	return vs, models, nil
}

// checkBatchLimits checks a validated batch against its key's budgets and
// the queue limits, and reserves its place in the backlog.
func (s *Tasks) checkBatchLimits(ctx context.Context, vs []validated) error {
	perModel, need := map[int]int{}, map[int]int{}
	for _, v := range vs {
		perModel[v.ModelID]++
		need[v.ModelID] += providers.EstimateTokens(v.Input)
	}
	for id, n := range need {
		// A batch comes from one key (or none).
		if err := s.checkBudget(ctx, vs[0].key, id, n); err != nil {
			return err
		}
	}
	if len(perModel) > 1 {
		// The whole batch against the total limit, before any model's
		// share is reserved (checkBackpressure checks each share alone).
		total, err := s.backlog.pending(ctx, 0, func(n int) bool { return n+len(vs) <= s.cfg.Queue.MaxQueueSize })
		if err != nil {
			return err
		}
		if total+len(vs) > s.cfg.Queue.MaxQueueSize {
			return &Error{Code: CodeQueueFull, RetryAfter: 5 * time.Second,
				Message: fmt.Sprintf("queue full: %d pending plus %d new is over the limit (queue.max_queue_size) of %d", total, len(vs), s.cfg.Queue.MaxQueueSize)}
		}
	}
	for id, k := range perModel {
		if err := s.checkBackpressure(ctx, id, k); err != nil {
			return err
		}
	}
	return nil
}

// insertBatch inserts a batch in one transaction.
func (s *Tasks) insertBatch(ctx context.Context, vs []validated) ([]*ent.Task, error) {
	var created []*ent.Task
	err := s.m.withTx(ctx, func(tx *ent.Tx) error {
		bs := make([]*ent.TaskCreate, len(vs))
		for i, v := range vs {
			bs[i] = s.taskCreate(tx.Task.Create(), v)
		}
		// Insert in chunks: MySQL limits placeholders per statement.
		for start := 0; start < len(bs); start += 500 {
			end := min(start+500, len(bs))
			part, e := tx.Task.CreateBulk(bs[start:end]...).Save(ctx)
			if e != nil {
				return e
			}
			created = append(created, part...)
		}
		return nil
	})
	if err != nil {
		return nil, dbErr(err, "task", 0)
	}
	return created, nil
}

func (s *Tasks) taskCreate(c *ent.TaskCreate, v validated) *ent.TaskCreate {
	c.SetModelID(v.ModelID).SetType(v.typ).SetPrompt(v.Input).SetPriority(v.priority).
		SetMaxRetries(v.retries).SetStatus(domain.StatusPending).SetNillableTimeoutSeconds(v.TimeoutSeconds).
		SetNillableAPIKeyID(v.APIKeyID).SetCaller(v.caller).SetCreatedAt(s.now()).
		SetNillableRunAt(v.runAt).SetScheduled(v.scheduled).SetNillableCallbackURL(v.callback)
	if v.key != nil {
		c.SetCaller(v.key.Name).SetWeight(v.key.Weight)
	}
	if v.Params != nil {
		c.SetParams(v.Params)
	}
	if v.IdempotencyKey != "" {
		c.SetIdempotencyKey(v.scopedKey()).SetRequestHash(v.hash())
	}
	return c
}

// loadLiveModel returns a model that may take new tasks.
func (s *Tasks) loadLiveModel(ctx context.Context, id int, field string) (*ent.Model, error) {
	m, err := s.models.get(ctx, s.db, id)
	if ent.IsNotFound(err) {
		return nil, Invalid(field, "model %d does not exist", id)
	}
	if err != nil {
		return nil, dbErr(err, "model", id)
	}
	if m.DeletedAt != nil {
		return nil, Invalid(field, "model %d was deleted", id)
	}
	return m, nil
}

// createReq is a validated task to insert, with its (live) model.
type createReq struct {
	v validated
	m *ent.Model
}

// insertTasks stores a batch of new tasks with one multi-row INSERT,
// announces them and admits them to their models' queues, one slot call
// per model (the enqueues of a model's grants go out side by side).
// Admission happens before the callers get their answers, so a task read
// right after its creation already shows where it waits.
func (s *Tasks) insertTasks(ctx context.Context, reqs []createReq) []result[*ent.Task] {
	builders := make([]*ent.TaskCreate, len(reqs))
	for i, r := range reqs {
		builders[i] = s.taskCreate(s.db.Task.Create(), r.v)
	}
	ts, err := s.db.Task.CreateBulk(builders...).Save(ctx)
	if err != nil {
		return failAll[*ent.Task](len(reqs), dbErr(err, "task", 0))
	}
	byModel := map[int][]*ent.Task{}
	models := map[int]*ent.Model{}
	res := make([]result[*ent.Task], len(reqs))
	now := make([]*ent.Task, 0, len(ts))
	for i, t := range ts {
		if f := reqs[i].v.OnStored; f != nil {
			f(t)
		}
		s.m.publishCreated(ctx, t)
		res[i].out = t
		if t.Scheduled {
			// Admitted by the due scanner when its run_at comes.
			s.noteScheduled(*t.RunAt)
			continue
		}
		now = append(now, t)
		byModel[reqs[i].m.ID] = append(byModel[reqs[i].m.ID], t)
		models[reqs[i].m.ID] = reqs[i].m
	}
	s.m.fresh.put(now) // before admission: a granted task may be picked up at once
	for id, group := range byModel {
		if err := s.disp.AdmitMany(ctx, group, models[id]); err != nil {
			// The tasks are stored; the reconciler enqueues them once Redis answers.
			s.log.Warn("admit tasks failed; the reconciler will retry", "model_id", id, "tasks", len(group), "err", err)
		}
	}
	return res
}

// checkBackpressure refuses work when a model's or the system's backlog
// (pending tasks) would pass queue.max_queue_size. Accepted work is
// counted at once, so one process never overshoots the limit between two
// reads of the database.
func (s *Tasks) checkBackpressure(ctx context.Context, modelID, adding int) error {
	limit := s.cfg.Queue.MaxQueueSize
	fits := func(n int) bool { return n+adding <= limit }
	n, err := s.backlog.pending(ctx, modelID, fits)
	if err != nil {
		return err
	}
	if n+adding > limit {
		return &Error{Code: CodeQueueFull, RetryAfter: 5 * time.Second,
			Message: fmt.Sprintf("queue full: model %d has %d pending tasks, the limit (queue.max_queue_size) is %d; retry later", modelID, n, limit)}
	}
	total, err := s.backlog.pending(ctx, 0, fits)
	if err != nil {
		return err
	}
	if total+adding > limit {
		return &Error{Code: CodeQueueFull, RetryAfter: 5 * time.Second,
			Message: fmt.Sprintf("queue full: %d tasks pending in total, the limit (queue.max_queue_size) is %d; retry later", total, limit)}
	}
	s.backlog.reserve(modelID, adding)
	return nil
}
