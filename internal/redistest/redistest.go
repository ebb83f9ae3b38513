// Package redistest starts real Redis topologies from Debian's
// redis-server for tests and the bench: a Redis Cluster of three masters
// with one replica each, and a Sentinel set (one master, one replica,
// three sentinels). Every server listens on loopback, keeps nothing on disk
// and is a child of the calling process (it dies with it).
//
// Ports come from PortBase (64700) upwards, skipping any that are taken, so
// several topologies can run side by side on one machine.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// SharedAddr is the Redis server the test suites share:
// TEST_REDIS_ADDR, else 127.0.0.1:6379. A test on it keeps to a database
// number or a key prefix of its own.
func SharedAddr() string {
	if addr := os.Getenv("TEST_REDIS_ADDR"); addr != "" {
		return addr
	}
	return "127.0.0.1:6379"
}

// PortBase is where port allocation starts.
const PortBase = 64700

var portMu sync.Mutex
var nextPort = PortBase

// FreePorts returns n loopback ports that nothing listens on, from PortBase
// upwards (each call moves on, so one process never hands a port out twice).
func FreePorts(n int) ([]int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	var out []int
	for ; len(out) < n; nextPort++ {
		if nextPort > 65535 {
			return nil, errors.New("no free ports left above redistest.PortBase")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", nextPort))
		if err != nil {
			continue
		}
		_ = l.Close()
		out = append(out, nextPort)
	}
	return out, nil
}

// Server is one redis-server (or sentinel) process.
type Server struct {
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// start runs redis-server with the server's arguments and waits until it
// answers PING.
func (s *Server) start() error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }() // the child has its own descriptor; nothing was written through this one
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout, s.cmd.Stderr = log, log
	// The server dies with the process that started it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on port %d: %w", s.Port, err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("redis-server on port %d exited at start (log: %s)", s.Port, filepath.Join(s.Dir, "server.log"))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on port %d does not answer: %w", s.Port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Alive reports whether the process still runs.
func (s *Server) Alive() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Pid is the server's process id (0 before it started).
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// StartSingle starts one plain redis-server under dir (the bench's scaling
// mode measures on a Redis of its own).
func StartSingle(dir string) (*Server, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	s := &Server{Port: ports[0], Dir: filepath.Join(dir, fmt.Sprintf("single-%d", ports[0])), args: noPersistence(ports[0])}
	if err := s.start(); err != nil {
		s.Kill()
		return nil, err
	}
	return s, nil
}

func noPersistence(port int) []string {
	return []string{"--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no"}
}

// Cluster is a Redis Cluster of three masters, each with one replica.
type Cluster struct {
	Nodes []*Server
}

// Addrs are the addresses of every node (what redis.cluster_addrs takes).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// NodeTimeout is the cluster's node timeout: a master that stops answering
// is failed over to its replica a little after it.
const NodeTimeout = 1500 * time.Millisecond

// StartCluster starts six cluster-mode servers under dir and joins them
// into a cluster (redis-cli --cluster create, one replica per master). It
// returns once every node reports cluster_state:ok.
func StartCluster(dir string) (*Cluster, error) {
	ports, err := FreePorts(12)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range 6 {
		// The cluster bus port is given explicitly: Redis's default, port +
		// 10000, is past 65535 for ports in our range.
		n := &Server{Port: ports[i], Dir: filepath.Join(dir, fmt.Sprintf("node-%d", ports[i])),
			args: append(noPersistence(ports[i]), "--cluster-enabled", "yes",
				"--cluster-port", fmt.Sprint(ports[6+i]),
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", fmt.Sprint(NodeTimeout.Milliseconds()),
				// A replica takes over however long it was cut off.
				"--cluster-replica-validity-factor", "0")}
		if err := n.start(); err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitHealthy waits until every live node reports cluster_state:ok and
// the cluster has three masters that answer.
func (c *Cluster) WaitHealthy(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := c.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis cluster not healthy after %s: %w", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	masters := 0
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		info, err := cl.ClusterInfo(ctx).Result()
		role, rerr := cl.Do(ctx, "ROLE").Slice()
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Addr(), err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("node %s: cluster_state not ok", n.Addr())
		}
		if rerr == nil && len(role) > 0 && role[0] == "master" {
			masters++
		}
	}
	if masters != 3 {
		return fmt.Errorf("%d live masters, want 3", masters)
	}
	return nil
}

// MasterOf returns the node that serves key now.
func (c *Cluster) MasterOf(key string) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			_ = cl.Close()
			continue
		}
		//nolint:staticcheck // CLUSTER SLOTS still answers on Redis 7; CLUSTER SHARDS would need 7.0 or later
		slots, err := cl.ClusterSlots(ctx).Result()
		_ = cl.Close()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				for _, m := range c.Nodes {
					if m.Addr() == s.Nodes[0].Addr {
						return m, nil
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("no node serves key %q", key)
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		n.Kill()
	}
}

// Sentinel is one master, one replica and three sentinels that watch them
// under MasterName.
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []*Server
}

// MasterName is the name the sentinels monitor the master under.
const MasterName = "llmsched"

// DownAfter is how long the sentinels wait before they call a silent
// master down and fail over.
const DownAfter = 1000 * time.Millisecond

// StartSentinel starts the master, its replica and three sentinels under
// dir, and returns once the replica is in sync and every sentinel knows
// the master, the replica and the other sentinels.
func StartSentinel(dir string) (*Sentinel, error) {
	ports, err := FreePorts(5)
	if err != nil {
		return nil, err
	}
	s := &Sentinel{}
	s.Master = &Server{Port: ports[0], Dir: filepath.Join(dir, "master"), args: noPersistence(ports[0])}
	if err := s.Master.start(); err != nil {
		return nil, err
	}
	s.Replica = &Server{Port: ports[1], Dir: filepath.Join(dir, "replica"),
		args: append(noPersistence(ports[1]), "--replicaof", "127.0.0.1", fmt.Sprint(ports[0]))}
	if err := s.Replica.start(); err != nil {
		s.Stop()
		return nil, err
	}
	for i := range 3 {
		d := filepath.Join(dir, fmt.Sprintf("sentinel-%d", ports[2+i]))
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.Stop()
			return nil, err
		}
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			ports[2+i], d, MasterName, ports[0], MasterName, DownAfter.Milliseconds(), MasterName, MasterName)
		path := filepath.Join(d, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			s.Stop()
			return nil, err
		}
		sn := &Server{Port: ports[2+i], Dir: d, args: []string{path, "--sentinel"}}
		if err := sn.start(); err != nil {
			s.Stop()
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, sn)
	}
	if err := s.waitReady(30 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// SentinelAddrs are the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr()
	}
	return out
}

func (s *Sentinel) waitReady(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := s.ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sentinel set not ready after %s: %w", within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Sentinel) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	mc := redis.NewClient(&redis.Options{Addr: s.Master.Addr(), MaxRetries: -1})
	info, err := mc.Info(ctx, "replication").Result()
	_ = mc.Close()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "connected_slaves:1") || !strings.Contains(info, "state=online") {
		return errors.New("replica not in sync yet")
	}
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1})
		m, err := sc.Master(ctx, MasterName).Result()
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: %w", sn.Addr(), err)
		}
		if m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
			return fmt.Errorf("sentinel %s sees %s replicas and %s other sentinels", sn.Addr(), m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return nil
}

// CurrentMaster asks the sentinels which server is the master now.
func (s *Sentinel) CurrentMaster() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for _, sn := range s.Sentinels {
		if !sn.Alive() {
			continue
		}
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1})
		addr, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
		_ = sc.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel names the master: %w", errors.Join(errs...))
}

// Stop kills every process.
func (s *Sentinel) Stop() {
	for _, n := range s.Sentinels {
		n.Kill()
	}
	if s.Replica != nil {
		s.Replica.Kill()
	}
	if s.Master != nil {
		s.Master.Kill()
	}
}
