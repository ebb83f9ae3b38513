// Package webhooks sends completion webhooks (docs/webhooks.md). The
// scheduler writes a webhook_deliveries row in the same transaction as a
// task's move to completed, failed or cancelled (internal/scheduler/machine_webhooks.go);
// a Sender in every worker process claims due rows with a lease, POSTs a
// signed JSON body to the callback URL, stores the attempt and retries
// with exponential backoff and jitter until a 2xx answer or
// webhooks.max_age. Delivery is at least once: a receiver dedupes on the
// X-LLMSched-Delivery header.
package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/webhookdelivery"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/loop"
	"github.com/llmsched/llm-scheduler/internal/secrets"
)

// Headers of every webhook request.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" with the secret>".
	SignatureHeader = "X-LLMSched-Signature"
	// DeliveryHeader is the delivery's id: the same on every retry and
	// redelivery of one event, so a receiver can drop repeats.
	DeliveryHeader = "X-LLMSched-Delivery"
	// EventHeader is "task.completed", "task.failed" or "task.cancelled".
	EventHeader = "X-LLMSched-Event"
	// AttemptHeader is the try number of this POST (1, 2, ...).
	AttemptHeader = "X-LLMSched-Attempt"
)

// DefaultTolerance is how old a signature's timestamp may be before
// Verify calls it a replay.
const DefaultTolerance = 5 * time.Minute

// Body is what every webhook POSTs.
type Body struct {
	// DeliveryID is the delivery's id (also the X-LLMSched-Delivery
	// header).
	DeliveryID int `json:"delivery_id"`
	// Event is "task.completed", "task.failed" or "task.cancelled".
	Event string `json:"event"`
	// Attempt counts the tries of this delivery, from 1.
	Attempt int `json:"attempt"`
	// SentAt is when this try was made.
	SentAt time.Time `json:"sent_at"`
	// Task is the task as it was when it reached its status.
	Task json.RawMessage `json:"task"`
}

// Sign is the X-LLMSched-Signature value for a body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrTooOld       = errors.New("webhook signature timestamp outside the tolerance (replay?)")
	ErrMalformed    = errors.New("webhook signature header malformed")
)

// Verify checks a signature header against the raw body: the HMAC must
// match (compared in constant time) and the timestamp must be within
// tolerance of now.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrMalformed
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	ok := false
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	return nil
}

// Sender claims and sends due deliveries. Every worker process runs one;
// they share the work through leases on the rows.
type Sender struct {
	db     *ent.Client
	cfg    *config.Config
	client *http.Client
	kr     *secrets.Keyring
	log    *slog.Logger
	owner  string
	seq    atomic.Int64
	wake   chan struct{}
	sem    chan struct{}
	wg     sync.WaitGroup
	now    func() time.Time
	loop   loop.Loop // runs run between Start and Stop
}

// New builds a sender. selfAddrs are this process's own listen addresses
// (refused as destinations besides the configured one).
func New(db *ent.Client, cfg *config.Config, log *slog.Logger, selfAddrs ...string) (*Sender, error) {
	pol, err := cfg.WebhookPolicy(selfAddrs...)
	if err != nil {
		return nil, err
	}
	kr, err := secrets.FromConfig(cfg)
	if err != nil {
		return nil, err
	}
	client := pol.Client()
	// A redirect is an answer, not a 2xx: it is never followed.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	host, _ := os.Hostname()
	return &Sender{
		db: db, cfg: cfg, client: client, kr: kr, log: log,
		owner: fmt.Sprintf("%s:%d", host, os.Getpid()),
		wake:  make(chan struct{}, 1), sem: make(chan struct{}, cfg.Webhooks.Concurrency), now: time.Now,
	}, nil
}

// Wake makes the sender look for due deliveries at once.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// lease is how long a claim lasts: longer than one POST and its write.
func (s *Sender) lease() time.Duration { return 2*s.cfg.Webhooks.Timeout.D() + 10*time.Second }

// Start starts sending deliveries in a goroutine of the sender's own,
// until Stop.
func (s *Sender) Start(ctx context.Context) error { return s.loop.Start(ctx, s.run) }

// Stop stops taking deliveries and waits for the POSTs in flight (each
// bounded by webhooks.timeout) and the goroutine to end, or for ctx to end.
func (s *Sender) Stop(ctx context.Context) error { return s.loop.Stop(ctx) }

// run sends deliveries until ctx ends, then waits for the POSTs in flight.
func (s *Sender) run(ctx context.Context) {
	defer s.wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		full, err := s.round(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("webhook round failed; trying again", "err", err)
		}
		wait := s.cfg.Webhooks.PollInterval.D()
		if full {
			wait = 0
		} else if next, err := s.nextDue(ctx); err == nil && next != nil {
			wait = min(wait, max(time.Until(*next), 0))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// nextDue is when the soonest pending delivery comes due.
func (s *Sender) nextDue(ctx context.Context) (*time.Time, error) {
	d, err := s.db.WebhookDelivery.Query().Where(webhookdelivery.StatusEQ(domain.WebhookPending)).
		Order(ent.Asc(webhookdelivery.FieldNextAttemptAt)).Select(webhookdelivery.FieldNextAttemptAt).First(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d.NextAttemptAt, nil
}

// free counts the POSTs this process may still start.
func (s *Sender) free() int { return cap(s.sem) - len(s.sem) }

// round claims as many due deliveries as there are free slots and starts
// their POSTs. full reports that every slot was used (more may be due).
func (s *Sender) round(ctx context.Context) (full bool, err error) {
	n := s.free()
	if n == 0 {
		return true, nil
	}
	now := s.now()
	due := webhookdelivery.And(webhookdelivery.StatusEQ(domain.WebhookPending), webhookdelivery.NextAttemptAtLTE(now),
		webhookdelivery.Or(webhookdelivery.LeaseUntilIsNil(), webhookdelivery.LeaseUntilLT(now)))
	ids, err := s.db.WebhookDelivery.Query().Where(due).Order(ent.Asc(webhookdelivery.FieldNextAttemptAt)).
		Limit(n).IDs(ctx)
	if err != nil {
		return false, err
	}
	started := 0
	for _, id := range ids {
		token := fmt.Sprintf("%s#%d", s.owner, s.seq.Add(1))
		// The fenced claim: only one process moves lease_until forward.
		c, err := s.db.WebhookDelivery.Update().Where(webhookdelivery.ID(id), due).
			SetLeaseUntil(now.Add(s.lease())).SetOwner(token).Save(ctx)
		if err != nil {
			return false, err
		}
		if c == 0 {
			continue // another process took it
		}
		d, err := s.db.WebhookDelivery.Get(ctx, id)
		if err != nil {
			return false, err
		}
		s.sem <- struct{}{}
		s.wg.Add(1)
		started++
		go func() {
			defer func() { <-s.sem; s.wg.Done(); s.Wake() }()
			s.send(context.WithoutCancel(ctx), d, token)
		}()
	}
	return started == n && len(ids) == n, nil
}

// secret returns the secret that signs d.
func (s *Sender) secret(ctx context.Context, d *ent.WebhookDelivery) (string, error) {
	if d.APIKeyID != nil {
		k, err := s.db.APIKey.Get(ctx, *d.APIKeyID)
		if err != nil && !ent.IsNotFound(err) {
			return "", fmt.Errorf("read api key %d: %w", *d.APIKeyID, err)
		}
		if err == nil && k.WebhookSecret != "" {
			v, err := s.kr.Open(k.WebhookSecret)
			if err != nil {
				return "", fmt.Errorf("open the webhook secret of api key %d: %w", k.ID, err)
			}
			return v, nil
		}
	}
	if s.cfg.Webhooks.Secret != "" {
		return s.cfg.Webhooks.Secret, nil
	}
	return "", errors.New("no webhook secret: the task's API key has none and webhooks.secret is not set")
}

// outcome is how one POST ended.
type outcome struct {
	code     *int
	err      string
	started  time.Time
	duration time.Duration
}

func (o outcome) ok() bool { return o.code != nil && *o.code >= 200 && *o.code < 300 }

// send makes one try of d and records it.
func (s *Sender) send(ctx context.Context, d *ent.WebhookDelivery, token string) {
	attempt := d.Attempts + 1
	o := s.post(ctx, d, attempt)
	if err := s.record(ctx, d, token, attempt, o); err != nil {
		s.log.Warn("record webhook attempt; the lease will expire and it is tried again", "delivery_id", d.ID, "err", err)
	}
}

// post sends the request of one try.
func (s *Sender) post(ctx context.Context, d *ent.WebhookDelivery, attempt int) outcome {
	o := outcome{started: s.now()}
	fail := func(err error) outcome {
		o.err = err.Error()
		o.duration = time.Since(o.started)
		return o
	}
	secret, err := s.secret(ctx, d)
	if err != nil {
		return fail(err)
	}
	event := "task." + string(d.Event)
	body, err := json.Marshal(Body{DeliveryID: d.ID, Event: event, Attempt: attempt, SentAt: o.started.UTC(),
		Task: json.RawMessage(d.Payload)})
	if err != nil {
		return fail(err)
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Webhooks.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.URL, strings.NewReader(string(body)))
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "llm-scheduler-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(secret, o.started, body))
	req.Header.Set(DeliveryHeader, strconv.Itoa(d.ID))
	req.Header.Set(EventHeader, event)
	req.Header.Set(AttemptHeader, strconv.Itoa(attempt))
	resp, err := s.client.Do(req)
	if err != nil {
		return fail(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	o.code = &code
	o.duration = time.Since(o.started)
	if !o.ok() {
		o.err = fmt.Sprintf("receiver answered %d %s", code, http.StatusText(code))
	}
	return o
}

// Backoff is the delay before try attempt+1 after attempt failed: the
// first delay doubled per try, capped, then jittered down by up to half
// (full jitter on the upper half), so that retries of many deliveries
// spread out.
func Backoff(first, maxDelay time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + rand.N(d/2+1)
}

// record stores one try and what follows: delivered, the next retry, or
// given up. Both writes apply only while token still owns the row.
//
// A redelivery asked while the try was in flight wins: Service.Redeliver
// takes the row from its owner (and leaves the lease, so that no second
// try starts beside this one). The try is then recorded, the lease freed,
// and the row stays pending for the redelivery, which the next round
// sends as the following attempt. Without that the try's outcome
// (delivered, say) overwrote the redelivery, and it was never sent.
func (s *Sender) record(ctx context.Context, d *ent.WebhookDelivery, token string, attempt int, o outcome) error {
	now := s.now()
	tx, err := s.db.Tx(ctx)
	if err != nil {
		return err
	}
	upd := tx.WebhookDelivery.Update().Where(webhookdelivery.ID(d.ID), webhookdelivery.Owner(token)).
		SetAttempts(attempt).SetNillableLastStatusCode(o.code).SetLastError(o.err).
		ClearLeaseUntil().SetOwner("")
	w := s.cfg.Webhooks
	switch {
	case o.ok():
		upd.SetStatus(domain.WebhookDelivered).SetDeliveredAt(now)
	case !now.Before(d.GiveUpAt):
		upd.SetStatus(domain.WebhookFailed)
	default:
		next := now.Add(Backoff(w.RetryDelay.D(), w.MaxRetryDelay.D(), attempt))
		if next.After(d.GiveUpAt) {
			next = d.GiveUpAt
		}
		upd.SetNextAttemptAt(next)
	}
	n, err := upd.Save(ctx)
	if err == nil && n == 0 {
		// Redelivered meanwhile (no owner, pending, this try not yet
		// counted), or no longer ours (another owner: the lease expired).
		n, err = tx.WebhookDelivery.Update().Where(webhookdelivery.ID(d.ID), webhookdelivery.Owner(""),
			webhookdelivery.StatusEQ(domain.WebhookPending), webhookdelivery.AttemptsLT(attempt)).
			SetAttempts(attempt).SetNillableLastStatusCode(o.code).SetLastError(o.err).
			ClearLeaseUntil().Save(ctx)
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("delivery %d: lease lost before the attempt was recorded", d.ID)
	}
	if err == nil {
		err = tx.WebhookAttempt.Create().SetDeliveryID(d.ID).SetNumber(attempt).SetNillableStatusCode(o.code).
			SetError(o.err).SetDurationMs(int(o.duration.Milliseconds())).SetWorker(s.owner).SetStartedAt(o.started).Exec(ctx)
	}
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if o.ok() {
		s.log.Info("webhook delivered", "delivery_id", d.ID, "task_id", d.TaskID, "attempt", attempt, "status_code", *o.code)
	} else {
		s.log.Warn("webhook attempt failed", "delivery_id", d.ID, "task_id", d.TaskID, "attempt", attempt, "err", o.err)
	}
	return nil
}
