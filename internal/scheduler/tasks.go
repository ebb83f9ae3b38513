package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

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

// validated is a NewTask that passed validation.
type validated struct {
	NewTask
	typ      domain.TaskType
	priority int
	retries  int
	// runAt is when the task was asked to run; scheduled is true when that
	// is still ahead (the task waits for the due scanner, not in a queue).
	runAt     *time.Time
	scheduled bool
	caller    string
	// key is the submitting API key (nil without one).
	key *ent.APIKey
	// callback is the resolved callback URL (the request's or the key's).
	callback *string
}

func (s *Service) validateTask(n NewTask, prefix string) (validated, error) {
	v := validated{NewTask: n}
	f := func(name string) string { return prefix + name }
	if n.ModelID <= 0 {
		return v, Invalid(f("model_id"), "is required and must be a positive integer")
	}
	t, err := domain.ParseTaskType(n.Type)
	if err != nil {
		return v, Invalid(f("type"), "must be one of %s, got %q", joinTypes(domain.TaskTypes()), n.Type)
	}
	v.typ = t
	if strings.TrimSpace(n.Input) == "" && !(t == domain.TypeCustom && n.Params["messages"] != nil) {
		return v, Invalid(f("input"), "must not be empty")
	}
	if limit := s.cfg.Queue.MaxInputBytes; len(n.Input) > limit {
		return v, &Error{Code: CodeInvalid, Field: f("input"),
			Message: fmt.Sprintf("%s: is %d bytes, over the limit of %d bytes", f("input"), len(n.Input), limit)}
	}
	if !utf8.ValidString(n.Input) {
		return v, Invalid(f("input"), "must be valid UTF-8")
	}
	v.priority = int(domain.PriorityMedium)
	if n.Priority != nil {
		if !domain.Priority(*n.Priority).Valid() {
			return v, Invalid(f("priority"), "must be 1 (low), 2 (medium) or 3 (high), got %d", *n.Priority)
		}
		v.priority = *n.Priority
	}
	v.retries = s.cfg.Queue.MaxRetries
	if n.MaxRetries != nil {
		if *n.MaxRetries < 0 || *n.MaxRetries > 100 {
			return v, Invalid(f("max_retries"), "must be between 0 and 100, got %d", *n.MaxRetries)
		}
		v.retries = *n.MaxRetries
	}
	if n.TimeoutSeconds != nil && (*n.TimeoutSeconds < 1 || *n.TimeoutSeconds > 86400) {
		return v, Invalid(f("timeout_seconds"), "must be between 1 and 86400, got %d", *n.TimeoutSeconds)
	}
	if len(n.IdempotencyKey) > 255 {
		return v, Invalid("idempotency_key", "must be at most 255 characters")
	}
	if err := validateParams(t, n.Params, f("params")); err != nil {
		return v, err
	}
	if err := s.validateSchedule(&v, f); err != nil {
		return v, err
	}
	if n.APIKeyID != nil && n.Caller != "" {
		// A key speaks for itself: with labels a key could take turns in
		// fair share under many names.
		return v, Invalid(f("caller"), "is set from the API key when auth is on; leave it out")
	}
	v.caller = domain.AnonymousCaller
	if n.Caller != "" {
		if err := ValidCaller(n.Caller); err != nil {
			return v, Invalid(f("caller"), "%s", err.Error())
		}
		v.caller = n.Caller
	}
	return v, nil
}

// ValidCaller checks a caller label: 1 to 128 printable characters, no
// leading or trailing space.
func ValidCaller(c string) error {
	if c == "" || len(c) > 128 || strings.TrimSpace(c) != c || !utf8.ValidString(c) {
		return errors.New("must be 1 to 128 characters without leading or trailing spaces")
	}
	for _, r := range c {
		if !unicode.IsPrint(r) {
			return errors.New("must hold printable characters only")
		}
	}
	return nil
}

func joinTypes[T ~string](ts []T) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = string(t)
	}
	return strings.Join(parts, ", ")
}

// validateParams checks the type-specific parameters.
func validateParams(t domain.TaskType, p map[string]any, field string) error {
	str := func(k string, required bool) error {
		v, ok := p[k]
		if !ok || v == nil {
			if required {
				return Invalid(field+"."+k, "is required for %s tasks", t)
			}
			return nil
		}
		s, ok := v.(string)
		if !ok || strings.TrimSpace(s) == "" || len(s) > 10000 {
			return Invalid(field+"."+k, "must be a non-empty string of at most 10000 bytes")
		}
		return nil
	}
	if v, ok := p["max_tokens"]; ok && v != nil {
		n, isNum := v.(float64)
		if iv, isInt := v.(int); isInt {
			n, isNum = float64(iv), true
		}
		if !isNum || n != math.Trunc(n) || n < 1 || n > 1_000_000 {
			return Invalid(field+".max_tokens", "must be an integer between 1 and 1000000")
		}
	}
	if v, ok := p["temperature"]; ok && v != nil {
		n, isNum := v.(float64)
		if iv, isInt := v.(int); isInt {
			n, isNum = float64(iv), true
		}
		if !isNum || n < 0 || n > 2 {
			return Invalid(field+".temperature", "must be a number between 0 and 2")
		}
	}
	if err := str("system_prompt", false); err != nil {
		return err
	}
	switch t {
	case domain.TypeTranslation:
		if err := str("target_language", true); err != nil {
			return err
		}
		if err := str("source_language", false); err != nil {
			return err
		}
	case domain.TypeSummarization:
		if err := str("length", false); err != nil {
			return err
		}
	case domain.TypeCustom:
		if v, ok := p["messages"]; ok && v != nil {
			msgs, ok := v.([]any)
			if !ok || len(msgs) == 0 {
				return Invalid(field+".messages", "must be a non-empty array of {role, content}")
			}
			for i, m := range msgs {
				mm, _ := m.(map[string]any)
				role, _ := mm["role"].(string)
				content, _ := mm["content"].(string)
				if role != "system" && role != "user" && role != "assistant" {
					return Invalid(fmt.Sprintf("%s.messages[%d].role", field, i), "must be system, user or assistant")
				}
				if content == "" {
					return Invalid(fmt.Sprintf("%s.messages[%d].content", field, i), "must be a non-empty string")
				}
			}
		}
		if v, ok := p["parameters"]; ok && v != nil {
			if _, ok := v.(map[string]any); !ok {
				return Invalid(field+".parameters", "must be an object")
			}
		}
	}
	return nil
}

// checkModelLimits refuses parameter overrides beyond the model's limits
// (a max_tokens above its config max_tokens), as providers.CheckParams
// says.
func checkModelLimits(m *ent.Model, params map[string]any, field string) error {
	err := providers.CheckParams(m.Config, params)
	var pe *providers.ParamError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return Invalid(field+"."+pe.Key, "%s", pe.Message)
	default:
		return Invalid("model_id", "model %d has an invalid config: %v", m.ID, err)
	}
}

// loadLiveModel returns a model that may take new tasks.
func (s *Service) loadLiveModel(ctx context.Context, id int, field string) (*ent.Model, error) {
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

func (s *Service) taskCreate(c *ent.TaskCreate, v validated) *ent.TaskCreate {
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

// CreateTask validates, applies backpressure and idempotency, stores the
// task as pending and hands it to the dispatcher. Nothing is written when
// validation fails.
func (s *Service) CreateTask(ctx context.Context, n NewTask) (*ent.Task, error) {
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
		return s.groups.creates.do(ctx, req)
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
func (s *Service) replay(ctx context.Context, n NewTask) (*ent.Task, error) {
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
func (s *Service) CreateTasks(ctx context.Context, ns []NewTask) ([]*ent.Task, error) {
	if len(ns) == 0 {
		return nil, Invalid("inputs", "must hold at least one task")
	}
	if len(ns) > s.cfg.Queue.MaxBatchSize {
		return nil, Invalid("inputs", "holds %d tasks, over the limit (queue.max_batch_size) of %d", len(ns), s.cfg.Queue.MaxBatchSize)
	}
	vs := make([]validated, len(ns))
	perModel := map[int]int{}
	models := map[int]*ent.Model{}
	for i, n := range ns {
		if n.IdempotencyKey != "" {
			return nil, Invalid(fmt.Sprintf("inputs[%d].idempotencyKey", i), "is not supported in a batch")
		}
		v, err := s.validateTask(n, fmt.Sprintf("inputs[%d].", i))
		if err != nil {
			return nil, err
		}
		if err := s.submitter(ctx, &v); err != nil {
			return nil, err
		}
		if err := s.resolveCallback(&v, fmt.Sprintf("inputs[%d].callback_url", i)); err != nil {
			return nil, err
		}
		vs[i] = v
		if _, ok := models[v.ModelID]; !ok {
			m, err := s.loadLiveModel(ctx, v.ModelID, fmt.Sprintf("inputs[%d].model_id", i))
			if err != nil {
				return nil, err
			}
			models[v.ModelID] = m
		}
		if err := checkModelLimits(models[v.ModelID], v.Params, fmt.Sprintf("inputs[%d].params", i)); err != nil {
			return nil, err
		}
		perModel[v.ModelID]++
	}
	need := map[int]int{}
	for _, v := range vs {
		need[v.ModelID] += providers.EstimateTokens(v.Input)
	}
	for id, n := range need {
		// A batch comes from one key (or none).
		if err := s.checkBudget(ctx, vs[0].key, id, n); err != nil {
			return nil, err
		}
	}
	if len(perModel) > 1 {
		// The whole batch against the total limit, before any model's
		// share is reserved (checkBackpressure checks each share alone).
		total, err := s.backlog.pending(ctx, s, 0, func(n int) bool { return n+len(vs) <= s.cfg.Queue.MaxQueueSize })
		if err != nil {
			return nil, err
		}
		if total+len(vs) > s.cfg.Queue.MaxQueueSize {
			return nil, &Error{Code: CodeQueueFull, RetryAfter: 5 * time.Second,
				Message: fmt.Sprintf("queue full: %d pending plus %d new is over the limit (queue.max_queue_size) of %d", total, len(vs), s.cfg.Queue.MaxQueueSize)}
		}
	}
	for id, k := range perModel {
		if err := s.checkBackpressure(ctx, id, k); err != nil {
			return nil, err
		}
	}
	var created []*ent.Task
	err := s.withTx(ctx, func(tx *ent.Tx) error {
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
	byModel := map[int][]*ent.Task{}
	s.publishCreatedMany(ctx, created)
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

func (s *Service) withTx(ctx context.Context, fn func(tx *ent.Tx) error) error {
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return fmt.Errorf("%w (rollback: %v)", err, rerr)
		}
		return err
	}
	return tx.Commit()
}

// TaskFilter selects tasks in ListTasks.
type TaskFilter struct {
	Status   string
	ModelID  int
	Type     string
	Priority int
	// APIKeyID limits the list to one submitter's tasks.
	APIKeyID *int
	// Caller limits the list to one caller's tasks.
	Caller string
}

// Page is a 1-based page of a list.
type Page struct {
	Page     int
	PageSize int
}

// TaskPage is one page of tasks.
type TaskPage struct {
	Tasks    []*ent.Task
	Total    int
	Page     int
	PageSize int
}

// MaxPageSize caps page_size.
const MaxPageSize = 100

// MaxPage caps page: its offset, (page-1)*page_size, must fit the
// database's OFFSET (a page past every row is empty anyway).
const MaxPage = 10_000_000

func (p Page) validate() error {
	if p.Page < 1 || p.Page > MaxPage {
		return Invalid("page", "must be between 1 and %d, got %d", MaxPage, p.Page)
	}
	if p.PageSize < 1 || p.PageSize > MaxPageSize {
		return Invalid("page_size", "must be between 1 and %d, got %d", MaxPageSize, p.PageSize)
	}
	return nil
}

// ListTasks returns a page of tasks, newest first.
func (s *Service) ListTasks(ctx context.Context, f TaskFilter, p Page) (TaskPage, error) {
	if err := p.validate(); err != nil {
		return TaskPage{}, err
	}
	q := s.db.Task.Query()
	if f.Status != "" {
		st, err := domain.ParseTaskStatus(f.Status)
		if err != nil {
			return TaskPage{}, Invalid("status", "must be one of %s, got %q", joinTypes(domain.TaskStatuses()), f.Status)
		}
		q = q.Where(task.StatusEQ(st))
	}
	if f.Type != "" {
		t, err := domain.ParseTaskType(f.Type)
		if err != nil {
			return TaskPage{}, Invalid("type", "must be one of %s, got %q", joinTypes(domain.TaskTypes()), f.Type)
		}
		q = q.Where(task.TypeEQ(t))
	}
	if f.ModelID < 0 {
		return TaskPage{}, Invalid("model_id", "must be a positive integer")
	}
	if f.ModelID > 0 {
		q = q.Where(task.ModelID(f.ModelID))
	}
	if f.Priority != 0 {
		if !domain.Priority(f.Priority).Valid() {
			return TaskPage{}, Invalid("priority", "must be 1, 2 or 3, got %d", f.Priority)
		}
		q = q.Where(task.Priority(f.Priority))
	}
	if f.APIKeyID != nil {
		q = q.Where(task.APIKeyID(*f.APIKeyID))
	}
	if f.Caller != "" {
		q = q.Where(task.Caller(f.Caller))
	}
	total, err := s.listTotal(ctx, f, q)
	if err != nil {
		return TaskPage{}, err
	}
	ts, err := q.Order(ent.Desc(task.FieldCreatedAt), ent.Desc(task.FieldID)).
		Offset((p.Page - 1) * p.PageSize).Limit(p.PageSize).All(ctx)
	if err != nil {
		return TaskPage{}, dbErr(err, "task", 0)
	}
	return TaskPage{Tasks: ts, Total: total, Page: p.Page, PageSize: p.PageSize}, nil
}

// listTotal counts the tasks a list filter matches. Filtered by status
// alone (or not at all) the count comes from the task counts by status
// (counts.go), which a big backlog makes costly to read every page.
func (s *Service) listTotal(ctx context.Context, f TaskFilter, q *ent.TaskQuery) (int, error) {
	if f.Type == "" && f.ModelID == 0 && f.Priority == 0 && f.APIKeyID == nil && f.Caller == "" {
		byStatus, err := s.StatusCounts(ctx)
		if err != nil {
			return 0, err
		}
		if f.Status != "" {
			return byStatus[domain.TaskStatus(f.Status)], nil
		}
		total := 0
		for _, n := range byStatus {
			total += n
		}
		return total, nil
	}
	n, err := q.Clone().Count(ctx)
	if err != nil {
		return 0, dbErr(err, "task", 0)
	}
	return n, nil
}

// GetTask returns one task.
func (s *Service) GetTask(ctx context.Context, id int) (*ent.Task, error) {
	return s.groups.reads.do(ctx, id)
}

// Attempts returns a task's attempts, oldest first.
func (s *Service) Attempts(ctx context.Context, taskID int) ([]*ent.Attempt, error) {
	as, err := s.db.Task.Query().Where(task.ID(taskID)).QueryAttemptHistory().
		Order(ent.Asc("number")).All(ctx)
	return as, dbErr(err, "task", taskID)
}

// CancelTask cancels a pending or running task. A pending task leaves its
// queue; a running one has its attempt aborted.
func (s *Service) CancelTask(ctx context.Context, id int) (*ent.Task, error) {
	cur, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if !cur.Status.Unfinished() {
		return nil, Conflict("task %d is %s; only pending or running tasks can be cancelled", id, cur.Status)
	}
	now := s.now()
	before, err := s.Transition(ctx, cur, Move{
		To: domain.StatusCancelled, Error: "cancelled by user",
		Apply: func(u *ent.TaskUpdate) {
			u.SetFinishedAt(now).SetError("cancelled by user").ClearNextAttemptAt().SetScheduled(false)
		},
	})
	if err != nil {
		return nil, err
	}
	m, err := s.db.Model.Get(ctx, before.ModelID)
	if err != nil {
		return nil, dbErr(err, "model", before.ModelID)
	}
	switch {
	case before.Scheduled:
		// It waited for its run_at in no queue: nothing to remove.
	case before.Status == domain.StatusRunning:
		// The worker frees the slot once its provider call has stopped, so
		// the model never runs more than max_workers calls at once. If the
		// worker is gone, the slot's lease expires.
		if err := s.disp.CancelRunning(ctx, id); err != nil {
			s.log.Warn("abort running attempt; it will be discarded when it ends", "task_id", id, "err", err)
		}
	default:
		if err := s.disp.Remove(ctx, before, m); err != nil {
			s.log.Warn("remove cancelled task from queue; the reconciler will finish it", "task_id", id, "err", err)
		}
	}
	return s.GetTask(ctx, id)
}

// RetryTask puts a failed or cancelled task back in its queue with a fresh
// retry budget. Its attempt history is kept.
func (s *Service) RetryTask(ctx context.Context, id int) (*ent.Task, error) {
	cur, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if cur.Status != domain.StatusFailed && cur.Status != domain.StatusCancelled {
		return nil, Conflict("task %d is %s; only failed or cancelled tasks can be retried", id, cur.Status)
	}
	m, err := s.loadLiveModel(ctx, cur.ModelID, "model_id")
	if err != nil {
		return nil, Conflict("task %d cannot be retried: %s", id, err.Error())
	}
	attempts := cur.Attempts
	if _, err := s.Transition(ctx, cur, Move{
		To: domain.StatusPending,
		Apply: func(u *ent.TaskUpdate) {
			u.SetAttemptBase(attempts).ClearError().ClearFinishedAt().ClearNextAttemptAt().ClearOutput().ClearEmbedding().
				SetScheduled(false)
		},
	}); err != nil {
		return nil, err
	}
	t, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.disp.Admit(ctx, t, m); err != nil {
		s.log.Warn("admit retried task; the reconciler will retry", "task_id", id, "err", err)
	}
	return t, nil
}

// RetriesLeft is how many automatic retries a task has before it fails.
func RetriesLeft(t *ent.Task) int {
	used := max(t.Attempts-t.AttemptBase-1, 0)
	return max(t.MaxRetries-used, 0)
}

// ModelOf returns the model of a task, deleted or not.
func (s *Service) ModelOf(ctx context.Context, t *ent.Task) (*ent.Model, error) {
	m, err := s.models.get(ctx, s.db, t.ModelID)
	return m, dbErr(err, "model", t.ModelID)
}
