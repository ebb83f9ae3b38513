// Command redis-topology starts a Redis Cluster (3 masters, 3 replicas) or
// a Sentinel set (master, replica, 3 sentinels) on loopback for the test
// suites, prints the environment that points apptest at it
// (TEST_REDIS_CLUSTER or TEST_REDIS_SENTINEL), then "READY", and runs
// until SIGINT or SIGTERM, when it kills every server it started.
//
//	redis-topology cluster|sentinel DIR
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/llmsched/llm-scheduler/internal/redistest"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "cluster" && os.Args[1] != "sentinel") {
		fmt.Fprintln(os.Stderr, "usage: redis-topology cluster|sentinel DIR")
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var stop func()
	switch os.Args[1] {
	case "cluster":
		c, err := redistest.StartCluster(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		stop = c.Stop
		fmt.Printf("TEST_REDIS_CLUSTER=%s\n", strings.Join(c.Addrs(), ","))
	case "sentinel":
		s, err := redistest.StartSentinel(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		stop = s.Stop
		fmt.Printf("TEST_REDIS_SENTINEL=%s@%s\n", redistest.MasterName, strings.Join(s.SentinelAddrs(), ","))
	}
	fmt.Println("READY")
	<-sig
	stop()
}
