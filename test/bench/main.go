// Command bench measures how many AsyncTasks one operator tracks and what each poll costs (issue #7). It starts
// the local control plane (etcd and kube-apiserver from bin/), the vendor simulator behind a request counter,
// creates N AsyncTasks spread evenly over the four vendor types, and runs the manager as a child process of
// its own (this binary re-executed with -role=manager), so that the manager's CPU time and peak RSS are its
// alone: the control plane and the simulator run in other processes. It then plays these phases and prints
// one table:
//
//  1. warm-up: the manager starts with every task due; wait until every task shows Running;
//  2. steady: every task changes its progress once, at a staggered time; count vendor requests, status
//     writes, CPU and memory;
//  3. restart: stop the manager, start a new process; the largest vendor request rate in any second against
//     the backends' rateLimit, and the time until every task is polled again;
//  4. finish: a fraction of the tasks finishes at known, staggered times; detection latency;
//  5. slow backend: every API Gateway request takes 5 s; the poll interval the other backends achieve.
//
// With -unrelated-secrets-mib N, phases 2 to 5 are replaced by one: N MiB of Secrets that no backend uses are
// created in another namespace, and the manager's RSS before and after is printed (an operator that caches
// every Secret of the cluster grows by about N MiB).
//
// Setup (the control plane, creating the objects) is not measured. `make bench` runs it; see
// docs/performance.md for the results and how to read them.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

type config struct {
	tasks          int
	interval       time.Duration
	window         time.Duration
	concurrency    int
	qps            int
	burst          int
	finishFraction float64
	slowDelay      time.Duration
	createWorkers  int
	repoRoot       string
	out            string

	// unrelatedSecretsMiB, when not 0, replaces phases 2 to 5 by the unrelated-Secrets scenario.
	unrelatedSecretsMiB int
}

func main() {
	var cfg config
	role := flag.String("role", "bench", "bench, or manager (internal: the child process that runs the manager)")
	kubeconfig := flag.String("manager-kubeconfig", "", "manager role: the kubeconfig of the control plane")
	flag.IntVar(&cfg.tasks, "tasks", 1000, "number of AsyncTasks, spread evenly over the four vendor types")
	flag.DurationVar(&cfg.interval, "interval", 10*time.Second, "poll interval of every backend")
	flag.DurationVar(&cfg.window, "window", 0, "length of each measured phase; 0 means 6 poll intervals")
	flag.IntVar(&cfg.concurrency, "concurrency", 0, "workers polling at once (the operator's --workers); 0 keeps the operator's default (16)")
	flag.IntVar(&cfg.qps, "qps", 0, "spec.rateLimit.qps of every backend; 0 means max(100, tasks per interval second), "+
		"so that the restart storm is bound by it while the steady state is not")
	flag.IntVar(&cfg.burst, "burst", 10, "spec.rateLimit.burst of every backend")
	flag.Float64Var(&cfg.finishFraction, "finish-fraction", 0.2, "fraction of the tasks that finish in the finish phase")
	flag.DurationVar(&cfg.slowDelay, "slow-delay", 5*time.Second, "how long every request to the slow backend takes")
	flag.IntVar(&cfg.createWorkers, "create-workers", 16, "concurrent workers creating the objects (setup, not measured)")
	flag.IntVar(&cfg.unrelatedSecretsMiB, "unrelated-secrets-mib", 0, "after the warm-up, create this many MiB of "+
		"Secrets no backend uses (256 KiB each, in another namespace) and print the manager's RSS and heap before and "+
		"after, instead of phases 2 to 5")
	flag.StringVar(&cfg.repoRoot, "repo", ".", "repository root: holds bin/ and config/crd/bases")
	flag.StringVar(&cfg.out, "out", "", "also write the results table (Markdown) to this file")
	flag.Parse()

	if *role == "manager" {
		if err := runManager(*kubeconfig, cfg.concurrency); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
		return
	}
	if cfg.window == 0 {
		cfg.window = 6 * cfg.interval
	}
	if cfg.qps == 0 {
		cfg.qps = max(100, int(float64(cfg.tasks)/cfg.interval.Seconds()))
	}
	root, err := filepath.Abs(cfg.repoRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg.repoRoot = root
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
