package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/broker"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// Dispatcher implements scheduler.Dispatcher on Redis and asynq.
type Dispatcher struct {
	slots     *Slots
	client    *asynq.Client
	inspector *asynq.Inspector
	rdb       redis.UniversalClient
	log       *slog.Logger
	wakeCh    string // where idle workers listen for wake-ups (wake.go)
	// enqueued, when set, learns of every task this process enqueues
	// (the queue name): the worker's idle gate looks there again at once.
	enqueued atomic.Pointer[func(queue string)]
	// granted holds the models this process has handed a slot of (Redis
	// Cluster only; see firstGrant).
	granted sync.Map
	// waker sends wake-ups in the background (waker.go).
	waker *waker
}

var _ scheduler.Dispatcher = (*Dispatcher)(nil)

// NewDispatcher builds a dispatcher on the broker. leaseTTL is how long a
// slot survives without a heartbeat; order is how each model's parked
// tasks take freed slots.
func NewDispatcher(b *broker.Broker, leaseTTL time.Duration, order Order, log *slog.Logger) *Dispatcher {
	_, cluster := b.Client.(*redis.ClusterClient)
	slots := &Slots{rdb: b.Client, prefix: b.Prefix, ttl: leaseTTL, epoch: rediskeys.Epoch(b.Prefix),
		epochInScript: !cluster, modelMarks: cluster, wake: rediskeys.WakeArmed(b.Prefix), wakePerModel: cluster, weights: order.arg()}
	d := &Dispatcher{
		slots:     slots,
		client:    asynq.NewClientFromRedisClient(b.Client),
		inspector: asynq.NewInspectorFromRedisClient(b.Client),
		rdb:       b.Client,
		log:       log,
		wakeCh:    rediskeys.WakeChannel(b.Prefix),
	}
	d.waker = newWaker(d.wake, d.wakeKeyIfArmed)
	d.waker.start()
	return d
}

// capacity is how many of a model's tasks may hold slots now.
func capacity(m *ent.Model) int {
	if m.Status != domain.ModelOnline || m.DeletedAt != nil {
		return 0
	}
	return m.MaxWorkers
}

// Admit implements scheduler.Dispatcher.
func (d *Dispatcher) Admit(ctx context.Context, t *ent.Task, m *ent.Model) error {
	return d.AdmitMany(ctx, []*ent.Task{t}, m)
}

// AdmitMany implements scheduler.Dispatcher.
func (d *Dispatcher) AdmitMany(ctx context.Context, ts []*ent.Task, m *ent.Model) error {
	const chunk = 500
	for start := 0; start < len(ts); start += chunk {
		part := ts[start:min(start+chunk, len(ts))]
		items := make([]admitItem, len(part))
		prio := make(map[int]int, len(part))
		for i, t := range part {
			items[i] = itemOf(t)
			prio[t.ID] = t.Priority
		}
		held, granted, err := d.slots.Admit(ctx, m.ID, capacity(m), items)
		if err != nil {
			return err
		}
		for _, h := range held {
			h.Priority = prio[h.TaskID]
			granted = append(granted, h)
		}
		if err := d.enqueue(ctx, m.ID, granted); err != nil {
			return err
		}
	}
	return nil
}

// enqueue puts tasks that were just given a slot (or had their lease
// renewed) into asynq. A task already there is fine: asynq task ids equal
// database ids. Each message carries when its lease was given, so the
// worker that picks it up soon after need not confirm it (freshGrant).
func (d *Dispatcher) enqueue(ctx context.Context, modelID int, gs []Grant) error {
	if len(gs) == 0 {
		return nil
	}
	// Wake-ups go out once the tasks are in asynq, where the woken
	// workers look, from the waker (waker.go): this call does not wait
	// for them.
	switch {
	case gs[0].Wake || d.firstGrant(modelID):
		// Idle workers wait for a wake-up.
		defer d.askWake(true, "")
	case d.slots.wakeKeyOf(modelID) != "":
		// No worker was waiting when the slot script ran, but one may have
		// gone quiet since and taken its last look before the enqueue
		// landed: wake whoever armed the key meanwhile (a worker arming
		// after this finds the tasks itself).
		defer d.askWake(false, d.slots.wakeKeyOf(modelID))
	}
	if len(gs) == 1 {
		return d.enqueueOne(ctx, modelID, gs[0])
	}
	// Several grants (a batch of submissions, a model coming online) go
	// out side by side: each is two round trips in asynq's client, and a
	// submission's answer waits for them. They all hold slots, so they all
	// start at once anyway; their order in asynq does not matter.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, enqueueFanOut)
	)
	for _, g := range gs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := d.enqueueOne(ctx, modelID, g); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// firstGrant reports whether this is the first grant of a model in this
// process, on Redis Cluster (per-model wake keys): idle workers set the
// wake keys of the models they know, and a model created after they went
// quiet has none set yet, so its first grant wakes them regardless.
func (d *Dispatcher) firstGrant(modelID int) bool {
	if !d.slots.wakePerModel {
		return false
	}
	_, seen := d.granted.LoadOrStore(modelID, struct{}{})
	return !seen
}

// wake tells idle workers that tasks were enqueued (wake.go). If it is
// lost, they find the tasks at their next idle check.
func (d *Dispatcher) wake(ctx context.Context) {
	if err := d.rdb.Publish(context.WithoutCancel(ctx), d.wakeCh, "").Err(); err != nil {
		d.log.Warn("wake idle workers; they look again within queue.idle_check_interval", "err", err)
	}
}

// askWake has the waker send a wake-up (plain) or take the wake key key;
// once the dispatcher is closed, the waker sends it before returning.
func (d *Dispatcher) askWake(plain bool, key string) { d.waker.ask(plain, key) }

// wakeKeyIfArmed wakes the workers that went quiet since a slot script
// found none waiting (see enqueue): it takes the wake key key.
func (d *Dispatcher) wakeKeyIfArmed(ctx context.Context, key string) {
	err := wakeIfArmedScript.Run(context.WithoutCancel(ctx), d.rdb, []string{key}, d.wakeCh).Err()
	if err != nil {
		d.log.Warn("wake idle workers; they look again within queue.idle_check_interval", "err", err)
	}
}

// enqueueFanOut bounds the enqueues of one batch in flight.
const enqueueFanOut = 16

func (d *Dispatcher) enqueueOne(ctx context.Context, modelID int, g Grant) error {
	p := payload{TaskID: g.TaskID, ModelID: modelID, Priority: g.Priority, GrantedAt: g.At}
	id, queue := taskID(g.TaskID), QueueFor(g.Priority)
	send := func(id string) error {
		_, err := d.client.EnqueueContext(ctx, asynq.NewTask(TypeRunTask, p.encode()),
			asynq.TaskID(id), asynq.Queue(queue),
			asynq.MaxRetry(1_000_000), asynq.Timeout(0), asynq.Deadline(time.Now().Add(7*24*time.Hour)))
		return err
	}
	err := send(id)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// The task is already in asynq: fine while it waits there. An
		// active message, though, belongs to a handler that parked the
		// task and is returning, or to a worker that was lost (asynq
		// recovers its message only a minute or more later): the slot
		// just granted would go unused, so send a message of its own.
		// ProcessTask's fencing keeps a duplicate from running twice.
		info, ierr := d.inspector.GetTaskInfo(queue, id)
		err = nil
		if ierr == nil && info.State == asynq.TaskStateActive {
			err = send(fmt.Sprintf("%s~%d", id, time.Now().UnixNano()))
		}
	}
	if err != nil {
		return fmt.Errorf("enqueue task %d: %w", g.TaskID, err)
	}
	if f := d.enqueued.Load(); f != nil {
		(*f)(queue)
	}
	return nil
}

// Remove implements scheduler.Dispatcher.
func (d *Dispatcher) Remove(ctx context.Context, t *ent.Task, m *ent.Model) error {
	granted, err := d.slots.Release(ctx, m.ID, capacity(m), t.ID, 0)
	if err != nil {
		return err
	}
	// A pending task may sit in asynq (holding a slot, or waiting for a
	// retry). A running one is deleted by its worker when it stops.
	if t.Status == domain.StatusPending {
		if err := d.inspector.DeleteTask(QueueFor(t.Priority), taskID(t.ID)); err != nil &&
			!errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
			d.log.Debug("delete cancelled task from asynq", "task_id", t.ID, "err", err)
		}
	}
	return d.enqueue(ctx, m.ID, granted)
}

// CancelRunning implements scheduler.Dispatcher: asynq cancels the
// handler's context in whichever worker process runs it.
func (d *Dispatcher) CancelRunning(ctx context.Context, id int) error {
	if err := d.inspector.CancelProcessing(taskID(id)); err != nil {
		return fmt.Errorf("cancel running task %d: %w", id, err)
	}
	return nil
}

// Pump implements scheduler.Dispatcher.
func (d *Dispatcher) Pump(ctx context.Context, m *ent.Model) error {
	granted, err := d.slots.Pump(ctx, m.ID, capacity(m))
	if err != nil {
		return err
	}
	return d.enqueue(ctx, m.ID, granted)
}

// QueueState implements scheduler.Dispatcher.
func (d *Dispatcher) QueueState(ctx context.Context, t *ent.Task, m *ent.Model) (scheduler.QueueState, error) {
	st, err := d.slots.StateOf(ctx, m.ID, t.ID)
	if err != nil {
		return scheduler.QueueState{}, err
	}
	qs := scheduler.QueueState{
		Parked: st.Parked, Position: st.Position, Leased: st.Leased,
		Running: st.Running, Max: m.MaxWorkers, RateLimitedUntil: st.BackoffUntil,
	}
	if st.Parked || st.Leased {
		return qs, nil
	}
	// Not in the model's queue nor holding a slot: asynq may hold it
	// (between a failed attempt and the next, a retry timer does).
	info, err := d.inspector.GetTaskInfo(QueueFor(t.Priority), taskID(t.ID))
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
	case err != nil:
		return scheduler.QueueState{}, fmt.Errorf("look up task %d in asynq: %w", t.ID, err)
	case info.State == asynq.TaskStateRetry || info.State == asynq.TaskStateScheduled:
		qs.Timer = true
	case info.State == asynq.TaskStateActive:
		qs.Handling = true
	case info.State == asynq.TaskStatePending:
		qs.InWorkerQueue = true
	}
	return qs, nil
}

// Ping implements scheduler.Dispatcher.
func (d *Dispatcher) Ping(ctx context.Context) error { return d.rdb.Ping(ctx).Err() }

// Close releases the dispatcher: it sends the wake-ups still asked for
// and stops the waker. The asynq client shares the broker's Redis
// connection, which the broker closes.
func (d *Dispatcher) Close() error {
	d.waker.close()
	return nil
}

// WorkerCount counts live asynq servers (worker processes).
func (d *Dispatcher) WorkerCount(ctx context.Context) (int, error) {
	servers, err := d.inspector.Servers()
	if err != nil {
		return 0, fmt.Errorf("list worker servers: %w", err)
	}
	return len(servers), nil
}
