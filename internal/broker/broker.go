// Package broker connects to Redis, which carries dispatch state (asynq
// queues, model slot leases, parked tasks) and the event bus. With
// redis.embedded it starts an in-process Redis (miniredis) instead.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/rediskeys"
)

// Broker is a Redis connection, shared by asynq, the dispatcher and the bus.
type Broker struct {
	// Client is the scheduler's own client.
	Client redis.UniversalClient
	// Opt builds asynq clients, servers and inspectors on the same Redis.
	Opt asynq.RedisConnOpt
	// Prefix namespaces the scheduler's own keys.
	Prefix string
	// Embedded is the in-process server, nil when Redis is external.
	Embedded *miniredis.Miniredis

	// commands counts the commands every client made from Opt sent.
	commands  atomic.Int64
	stopClock chan struct{}
	clockDone chan struct{}
}

// Commands is how many Redis commands this process's clients (its own,
// asynq's clients and servers made from Opt) have sent: each command of a
// pipeline counts, a script call counts once (not the calls it makes
// inside Redis). Exported as the llmsched_redis_commands_total metric;
// the bench divides it by tasks.
func (b *Broker) Commands() int64 { return b.commands.Load() }

// Open connects to Redis (or starts the embedded one) and checks it answers.
func Open(ctx context.Context, cfg config.Redis) (*Broker, error) {
	b := &Broker{Prefix: cfg.KeyPrefix}
	switch {
	case cfg.Embedded:
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		b.Embedded = mr
		// The process's own clients reach it in memory (memconn.go); the
		// port stays open for tools such as redis-cli.
		b.Opt = clientOpt{Options: redis.Options{Addr: mr.Addr(), Protocol: Protocol, Dialer: b.dialEmbedded}}
		b.startClock()
	default:
		b.Opt = ConnOpt(cfg)
	}
	b.Opt = counted(b.Opt, &b.commands)
	client, ok := b.Opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("redis client of unexpected type %T", b.Opt.MakeRedisClient())
	}
	b.Client = client
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Ping(pctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	if err := b.claimAsynq(pctx, cfg); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// AsynqOwnerKey names, in a Redis database, the redis.key_prefix of the
// deployment whose asynq queues it holds.
const AsynqOwnerKey = rediskeys.AsynqOwner

// claimAsynq enforces one deployment per Redis database. redis.key_prefix
// namespaces the scheduler's own keys, but asynq's keys are fixed
// (asynq:{high}:pending, asynq:servers, ...) and cannot be prefixed: two
// deployments on one database would take each other's tasks. The first
// process of a deployment records its prefix in the database; a process
// with another prefix refuses to start, naming both prefixes and the
// database, instead of sharing queues.
func (b *Broker) claimAsynq(ctx context.Context, cfg config.Redis) error {
	if err := b.Client.SetNX(ctx, AsynqOwnerKey, cfg.KeyPrefix, 0).Err(); err != nil {
		return fmt.Errorf("redis: record this deployment's key_prefix: %w", err)
	}
	owner, err := b.Client.Get(ctx, AsynqOwnerKey).Result()
	if err != nil {
		return fmt.Errorf("redis: read the deployment that owns this database: %w", err)
	}
	if owner != cfg.KeyPrefix {
		return fmt.Errorf("redis.key_prefix is %q, but this Redis database (redis.db %d) holds the asynq queues of the deployment with key_prefix %q: "+
			"asynq's keys cannot be prefixed, so two deployments on one database would share queues; give each deployment its own redis.db "+
			"(or, if that deployment is gone, delete the key %s)", cfg.KeyPrefix, cfg.DB, owner, AsynqOwnerKey)
	}
	return nil
}

// ClusterReload bounds how long a Redis Cluster client keeps a slot map
// that names a dead master. go-redis (v9.23) keeps sending a slot's
// commands to its old master while that one refuses connections, and
// reloads the map only on a MOVED answer (which a dead node never gives)
// or once the map is ClusterStateReloadInterval old, 60 s by default: after
// a master was killed, its models got no slot for about 50 s although its
// replica had taken over within 3.5 s (chaos/TestClusterFailover). The
// reload is one CLUSTER SLOTS per client, made only while the client is in
// use.
const ClusterReload = 2 * time.Second

// ConnOpt is asynq's connection option for an external Redis: Redis
// Cluster when redis.cluster_addrs is set, Sentinel (a failover client)
// when redis.sentinel_master is set, else one server at host:port. asynq,
// the dispatcher and the event bus all use the client it makes.
func ConnOpt(cfg config.Redis) asynq.RedisConnOpt {
	switch {
	case len(cfg.ClusterAddrs) > 0:
		return clusterOpt{ClusterOptions: redis.ClusterOptions{Addrs: cfg.ClusterAddrs, Password: cfg.Password,
			PoolSize: cfg.PoolSize, Protocol: Protocol, ClusterStateReloadInterval: ClusterReload}}
	case cfg.SentinelMaster != "":
		return failoverOpt{FailoverOptions: redis.FailoverOptions{
			MasterName: cfg.SentinelMaster, SentinelAddrs: cfg.SentinelAddrs,
			SentinelPassword: cfg.SentinelPassword, Password: cfg.Password, DB: cfg.DB,
			PoolSize: cfg.PoolSize, Protocol: Protocol,
		}}
	}
	return clientOpt{Options: redis.Options{
		Addr: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), Password: cfg.Password, DB: cfg.DB,
		PoolSize: cfg.PoolSize, Protocol: Protocol,
	}}
}

// Protocol is the Redis protocol version the clients speak. RESP2: with
// go-redis's default (RESP3) every command first checks the connection for
// push notifications, which nothing here uses; profiles of the bench showed
// that check in the hot path of every slot and queue call.
const Protocol = 2

// clientOpt, failoverOpt and clusterOpt are asynq's connection options for
// the three topologies, carrying the go-redis options asynq's own types do
// not (the protocol, and the pool size on a cluster), and the counter of
// commands the clients they make add to (nil: not counted).
type (
	clientOpt struct {
		redis.Options
		count *atomic.Int64
	}
	failoverOpt struct {
		redis.FailoverOptions
		count *atomic.Int64
	}
	clusterOpt struct {
		redis.ClusterOptions
		count *atomic.Int64
	}
)

// MakeRedisClient implements asynq.RedisConnOpt.
func (o clientOpt) MakeRedisClient() any { return withCounter(redis.NewClient(&o.Options), o.count) }

// MakeRedisClient implements asynq.RedisConnOpt.
func (o failoverOpt) MakeRedisClient() any {
	return withCounter(redis.NewFailoverClient(&o.FailoverOptions), o.count)
}

// MakeRedisClient implements asynq.RedisConnOpt.
func (o clusterOpt) MakeRedisClient() any {
	return withCounter(redis.NewClusterClient(&o.ClusterOptions), o.count)
}

// counted returns opt with its clients counting their commands in n.
func counted(opt asynq.RedisConnOpt, n *atomic.Int64) asynq.RedisConnOpt {
	switch o := opt.(type) {
	case clientOpt:
		o.count = n
		return o
	case failoverOpt:
		o.count = n
		return o
	case clusterOpt:
		o.count = n
		return o
	}
	return opt
}

func withCounter(c redis.UniversalClient, n *atomic.Int64) redis.UniversalClient {
	if n != nil {
		c.AddHook(commandCounter{n})
	}
	return c
}

// commandCounter is a go-redis hook that counts commands: one atomic add
// per command or pipeline, nothing else.
type commandCounter struct{ n *atomic.Int64 }

// DialHook implements redis.Hook.
func (h commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// startClock advances the embedded Redis's key expiry with the wall clock:
// miniredis only expires keys when told time has passed, and locks, leases
// and asynq's own bookkeeping rely on TTLs.
func (b *Broker) startClock() {
	b.stopClock, b.clockDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.clockDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-b.stopClock:
				return
			case now := <-t.C:
				b.Embedded.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
}

// Key returns the scheduler's key for the given parts, under the prefix.
func (b *Broker) Key(parts ...string) string {
	k := b.Prefix
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// Ping checks Redis answers.
func (b *Broker) Ping(ctx context.Context) error { return b.Client.Ping(ctx).Err() }

// Close closes the client and stops the embedded server.
func (b *Broker) Close() error {
	var err error
	if b.Client != nil {
		err = b.Client.Close()
	}
	if b.Embedded != nil {
		close(b.stopClock)
		<-b.clockDone
		b.Embedded.Close()
	}
	return err
}

// errEmbeddedDown answers a dial of the embedded Redis while it is not
// running (closed with the broker, or stopped by a test).
var errEmbeddedDown = errors.New("embedded redis is not running")

// dialEmbedded connects a client of this process to the embedded Redis
// over an in-memory connection (memconn.go).
func (b *Broker) dialEmbedded(context.Context, string, string) (net.Conn, error) {
	// Under the server's lock: Close takes its server away under it and
	// then closes the connections that server has, so this one is either
	// among them or refused.
	b.Embedded.Lock()
	defer b.Embedded.Unlock()
	srv := b.Embedded.Server()
	if srv == nil {
		return nil, errEmbeddedDown
	}
	client, server := memPipe()
	srv.ServeConn(server)
	return client, nil
}
