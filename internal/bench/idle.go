package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverCommands reads Redis INFO stats total_commands_processed.
func serverCommands(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("total_commands_processed not in INFO stats")
}

// idleLoad is the Redis load of an idle scheduler.
type idleLoad struct {
	// server is INFO total_commands_processed per second over the window:
	// every client of that Redis counts, other users of a shared Redis too.
	server float64
	// own is the commands per second on the scheduler's own Redis database
	// (from MONITOR, which tags each command with its database), i.e. what
	// this scheduler process alone costs; -1 when not measured.
	own float64
}

// measureIdleRedis measures Redis commands per second over window.
func measureIdleRedis(ctx context.Context, rdb redis.UniversalClient, addr, password string, db int, window time.Duration) (idleLoad, error) {
	ownc := make(chan float64, 1)
	mctx, cancel := context.WithTimeout(ctx, window+2*time.Second)
	defer cancel()
	go func() {
		n, err := monitorCount(mctx, addr, password, db, window)
		if err != nil {
			ownc <- -1
			return
		}
		ownc <- float64(n) / window.Seconds()
	}()
	before, err := serverCommands(ctx, rdb)
	if err != nil {
		return idleLoad{}, err
	}
	t0 := time.Now()
	time.Sleep(window)
	after, err := serverCommands(ctx, rdb)
	if err != nil {
		return idleLoad{}, err
	}
	el := time.Since(t0)
	// The INFO call itself counts once.
	res := idleLoad{server: float64(after-before-1) / el.Seconds()}
	res.own = <-ownc
	return res, nil
}

// monitorCount counts, for window, the commands Redis runs on database db
// (including those run by Lua scripts), using MONITOR on its own connection.
func monitorCount(ctx context.Context, addr, password string, db int, window time.Duration) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	rd := bufio.NewReaderSize(conn, 1<<16)
	if password != "" {
		fmt.Fprintf(conn, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password)
		if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return 0, fmt.Errorf("redis auth for MONITOR failed: %q %v", line, err)
		}
	}
	fmt.Fprint(conn, "*1\r\n$7\r\nMONITOR\r\n")
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		return 0, fmt.Errorf("redis MONITOR refused: %q %v", line, err)
	}
	tag := "[" + strconv.Itoa(db) + " "
	_ = conn.SetReadDeadline(time.Now().Add(window))
	n := 0
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			break // the deadline ends the window
		}
		if i := strings.IndexByte(line, '['); i >= 0 && strings.HasPrefix(line[i:], tag) {
			n++
		}
	}
	return n, nil
}

// idlePickup submits single tasks to an idle scheduler, one at a time,
// and measures submit-to-running latency.
func idlePickup(ctx context.Context, col *collector, c *client, modelID, n int) (latencies, error) {
	lat := make(latencies, 0, n)
	for i := range n {
		// Let the workers go back to idle polling between tasks.
		time.Sleep(time.Duration(20+i%7*5) * time.Millisecond)
		t0 := time.Now()
		id, err := c.submitREST(ctx, modelID, "idle pickup probe")
		if err != nil {
			return nil, err
		}
		if err := col.wait(ctx, []int{id}, true, 30*time.Second); err != nil {
			return nil, err
		}
		t, _ := col.at(id, false)
		lat = append(lat, t.Sub(t0))
	}
	return lat, nil
}
