// Command bench measures how many AsyncTasks one operator tracks and what each poll costs (issues #7 and #15).
// It starts the local control plane (etcd and kube-apiserver from bin/), the vendor simulator behind a request
// counter, creates N running AsyncTasks (-tasks) spread evenly over the four vendor types, and runs the manager
// as a child process (a bench binary re-executed with -role=manager -manager-kubeconfig=... -concurrency=N),
// so that the manager's CPU time and peak RSS are its alone: the control plane and the simulator run in other
// processes. The manager is this binary's by default; -manager-bin runs another bench binary's, e.g. one built
// from an older commit (make bench-compare), and the table names it with its build info's vcs.revision
// (debug/buildinfo; -manager-revision when it has none: go build stamps none in a git worktree).
//
// With -finished F, F more AsyncTasks are created already finished before the manager starts (evenly over
// the four backends, named and with task IDs "done-NNNNNN", which the simulator does not know, so that any
// request for one shows in the counter): each status is written through the status subresource as the
// operator writes a task that succeeded (phase Succeeded, vendor status word, progress 100, message, task
// name, times, observedGeneration, Ready and Finished True with reason Succeeded, a result of ~100 bytes), with
// no ttlSecondsAfterFinished. The manager's first list holds all N + F objects.
//
// It then plays these phases (-phases picks some; warmup always runs, restart needs steady, slow needs finish;
// the rows of the others are left out) and prints one table:
//
//  1. warmup: the manager starts with every task due; wait until every task shows Running. Cache sync + first
//     poll: the time from the process's start until its asynctask controller's cache synced (controller-
//     runtime's "Starting workers" line of controller asynctask in the manager's JSON log) and until every
//     running task was polled once; target: every task polled within one interval after the sync, plus what
//     the backends' rateLimit forces;
//  2. steady: every task changes its progress once, at a staggered time; polls per task per interval (target
//     1.0 ± 5%), status writes, manager CPU per 1,000 polls (target ≤ 0.18 s at 10,000 running), heap after
//     a GC less the empty manager's, per tracked task, running or finished (target ≤ 1.5 KiB);
//  3. restart: stop the manager (SIGTERM), start a new process. Cache sync + first poll as in the warm-up;
//     the time until every running task was polled again from the new process's start and from its cache
//     sync (target ≤ 1.1 intervals each); the vendor requests in every whole second from the process's start
//     until one interval after every task was polled again, and in the largest sliding second, all backends
//     together and per backend, against the steady rate: N / interval polls, each with the HTTP requests a
//     poll made in the steady window (target: every second ≤ 1.1 × steady; a steady window that fell behind
//     does not lower the steady rate, and its own rate is shown too); the largest sliding second against
//     the rateLimit; status writes beyond the observations not yet written before the restart (target 0);
//  4. finish: a fraction of the tasks finishes at known, staggered times; detection latency, vendor finished →
//     Ready=True seen (target p99 ≤ interval + 1 s);
//  5. slow: every API Gateway request takes 5 s; the poll interval the other backends achieve.
//
// Over the whole run: status writes per running task against the distinct observations the simulator gave;
// the manager's peak RSS (VmHWM, largest of its processes; target < 250 MiB with ≥ 100,000 objects held, else
// < 150 MiB from 10,000); with -finished, the vendor requests for finished tasks and the status writes to them
// (target 0 each).
//
// -profile-dir DIR sets BENCH_PPROF_ADDR (a free loopback port) for the first manager process, takes a CPU
// profile over the steady window (whole seconds ending inside it) and a heap profile (gc=1) at its end, and
// writes DIR/cpu-LABEL.pprof, DIR/heap-LABEL.pprof and, after the run, `go tool pprof -top -nodecount=30`
// of each as .txt (LABEL: -manager-label, "current" for this binary). -out writes the table as Markdown,
// -json the rows with their numbers; -compare BASE.json,NEW.json prints two runs' tables and the ratio new /
// base of every number, and runs nothing.
//
// With -unrelated-secrets-mib N, phases 2 to 5 are replaced by one: N MiB of Secrets that no backend uses are
// created in another namespace, and the manager's RSS before and after is printed (an operator that caches
// every Secret of the cluster grows by about N MiB); -json is not written then.
//
// With -replicas N (N ≥ 2), the single replica's phases are followed by a ring of N replicas (issue #22). Only
// warmup, steady and restart run on the single replica then (finish and slow need one manager and change the
// tasks); its steady window is the reference the replicas are held against:
//
//  6. ring: the last single manager stops (SIGTERM) and N manager processes start, each a member of one ring
//     (the manager role with -ring-identity=replica-i, its Lease in namespace default, -lease-duration,
//     -lease-renew-deadline and -lease-retry-period); wait until every replica's ring has all N members and
//     every task was polled since, let one interval pass, then a steady window as long as the single one's,
//     in which every task changes its progress once more: polls per task per interval (target 1.0 ± 5%),
//     duplicate polls (two polls of one task closer than half an interval, counted in front of the simulator;
//     target 0), the longest a task went unpolled beyond its interval (target 0 s, with 5% of the interval for
//     scheduling), the running tasks each replica owns (its asynctask_ring_owned_tasks on SIGUSR1, against the
//     ring the bench computes from the identities with sharding.NewRing; target max/mean ≤ 1.2), and each
//     replica's CPU seconds (its polls', per 1,000), VmRSS, VmHWM and live heap against the single replica's;
//  7. kill (-kill): SIGKILL the first replica and measure for LeaseDuration + 2 × RetryPeriod + 2 intervals:
//     the longest a task went unpolled beyond its interval, for the dead replica's tasks (target ≤
//     LeaseDuration + 2 × RetryPeriod + interval) and the others' (target 0 s as above), the time from the kill
//     until the dead replica's tasks were first and all polled again, and duplicate polls (target 0);
//  8. rollout: as a Deployment's rolling update with surge 1, a replacement for the killed replica first, then
//     for each replica in turn a new one (a new identity) starts, and once its Lease is held the old one gets
//     SIGTERM; measured until 2 intervals after the last one exited: the longest a task went unpolled beyond its
//     interval (target ≤ one interval: a task that moves while its moment of the interval falls inside the
//     handover waits for its next moment) and duplicate polls (target 0).
//
// Setup (the control plane, creating the objects) is not measured. `make bench` runs it, `make bench-compare
// BASE=<rev>` runs it for the operator at BASE and the working tree's (see the Makefile for the scenarios);
// see docs/performance.md for the results and how to read them.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The phases, in the order they run; -phases picks a subset.
const (
	phaseWarmUp  = "warmup"
	phaseSteady  = "steady"
	phaseRestart = "restart"
	phaseFinish  = "finish"
	phaseSlow    = "slow"
)

var allPhases = []string{phaseWarmUp, phaseSteady, phaseRestart, phaseFinish, phaseSlow}

type config struct {
	tasks          int
	finished       int
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
	jsonOut        string
	phases         []string
	managerBin     string
	goMemLimit     string
	managerLabel   string
	managerRev     string
	profileDir     string

	// unrelatedSecretsMiB, when not 0, replaces phases 2 to 5 by the unrelated-Secrets scenario.
	unrelatedSecretsMiB int

	// replicas, when 2 or more, adds the ring phases after the single replica's (see the package comment).
	replicas int
	// kill adds the kill -9 phase to the ring's.
	kill bool
	// leases are the ring members' Lease timings.
	leases leaseTimings
}

// leaseTimings are a ring member's Lease timings, as cmd/main.go's --lease-* flags set them.
type leaseTimings struct {
	duration, renewDeadline, retryPeriod time.Duration
}

// ringRuns reports whether the ring phases run.
func (c config) ringRuns() bool { return c.replicas >= 2 }

// has reports whether phase is to be run.
func (c config) has(phase string) bool { return slices.Contains(c.phases, phase) }

// parsePhases reads -phases: known names, warm-up always included, restart after steady and slow after finish
// (each is compared with the phase before it).
func parsePhases(s string) ([]string, error) {
	want := map[string]bool{phaseWarmUp: true}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			return nil, fmt.Errorf("-phases: unknown phase %q (known: %s)", p, strings.Join(allPhases, ","))
		}
		want[p] = true
	}
	if want[phaseRestart] && !want[phaseSteady] {
		return nil, fmt.Errorf("-phases: restart needs steady (its request rate is compared with the steady one)")
	}
	if want[phaseSlow] && !want[phaseFinish] {
		return nil, fmt.Errorf("-phases: slow needs finish (its reference is the finish phase)")
	}
	var out []string
	for _, p := range allPhases {
		if want[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

func main() {
	var cfg config
	role := flag.String("role", "bench", "bench, or manager (internal: the child process that runs the manager)")
	kubeconfig := flag.String("manager-kubeconfig", "", "manager role: the kubeconfig of the control plane")
	flag.IntVar(&cfg.tasks, "tasks", 1000, "number of running AsyncTasks, spread evenly over the four vendor types")
	flag.IntVar(&cfg.finished, "finished", 0, "number of AsyncTasks more that are already finished (status Succeeded, "+
		"written before the manager starts; task IDs the simulator does not know), spread evenly over the four backends")
	flag.DurationVar(&cfg.interval, "interval", 10*time.Second, "poll interval of every backend")
	flag.DurationVar(&cfg.window, "window", 0, "length of each measured phase; 0 means 6 poll intervals")
	flag.IntVar(&cfg.concurrency, "concurrency", 0, "workers polling at once (the operator's --workers); 0 keeps the operator's default (16)")
	flag.IntVar(&cfg.qps, "qps", 0, "spec.rateLimit.qps of every backend; 0 means max(100, tasks per interval second), "+
		"so that the restart storm is bound by it while the steady state is not")
	flag.IntVar(&cfg.burst, "burst", 10, "spec.rateLimit.burst of every backend")
	flag.Float64Var(&cfg.finishFraction, "finish-fraction", 0.2, "fraction of the tasks that finish in the finish phase")
	flag.DurationVar(&cfg.slowDelay, "slow-delay", 5*time.Second, "how long every request to the slow backend takes")
	flag.IntVar(&cfg.createWorkers, "create-workers", 16, "concurrent workers creating the objects (setup, not measured; "+
		"the finished tasks use three times as many)")
	flag.IntVar(&cfg.unrelatedSecretsMiB, "unrelated-secrets-mib", 0, "after the warm-up, create this many MiB of "+
		"Secrets no backend uses (256 KiB each, in another namespace) and print the manager's RSS and heap before and "+
		"after, instead of phases 2 to 5")
	phases := flag.String("phases", strings.Join(allPhases, ","), "the phases to run, comma-separated; warmup always runs, "+
		"restart needs steady and slow needs finish; the rows of the others are left out")
	flag.StringVar(&cfg.managerBin, "manager-bin", "", "run the manager role (-role=manager -manager-kubeconfig=... "+
		"-concurrency=N) from this binary, e.g. a bench built from an older commit; default: this binary")
	flag.StringVar(&cfg.goMemLimit, "manager-gomemlimit", "230MiB", "GOMEMLIMIT of the manager process: the default is what the "+
		"Deployment's limits.memory (256Mi) gives after cmd/main.go keeps a tenth as headroom; \"\" runs it without a limit")
	flag.StringVar(&cfg.managerLabel, "manager-label", "", "the manager binary's name in the table, the JSON file and "+
		"the profiles' file names; default: current for this binary, else the binary's file name")
	flag.StringVar(&cfg.managerRev, "manager-revision", "", "the manager binary's commit, shown when its build info has "+
		"none (go build stamps none in a git worktree; make bench-compare passes it)")
	flag.StringVar(&cfg.profileDir, "profile-dir", "", "take a CPU profile over the steady window and a heap profile "+
		"at its end from the manager (BENCH_PPROF_ADDR) and save them, with go tool pprof -top text, in this directory")
	flag.IntVar(&cfg.replicas, "replicas", 1, "with 2 or more: after the single replica's warmup, steady (and restart) "+
		"phases, run this many replicas as one ring (--sharding=ring) and measure them against it; finish and slow "+
		"do not run then. The manager binary must know the manager role's -ring-identity (-manager-bin of an older bench may not)")
	flag.BoolVar(&cfg.kill, "kill", false, "with -replicas 2 or more: kill -9 one replica after the ring's steady "+
		"window and measure how long its tasks and the others' go unpolled")
	flag.DurationVar(&cfg.leases.duration, "lease-duration", 15*time.Second, "ring members' Lease duration "+
		"(the operator's --lease-duration); also passed to the manager role")
	flag.DurationVar(&cfg.leases.renewDeadline, "lease-renew-deadline", 10*time.Second, "ring members' renew "+
		"deadline (--lease-renew-deadline)")
	flag.DurationVar(&cfg.leases.retryPeriod, "lease-retry-period", 2*time.Second, "ring members' retry period "+
		"(--lease-retry-period): how often a Lease is renewed and how long gained tasks wait")
	member := ringMember{}
	flag.StringVar(&member.identity, "ring-identity", "", "manager role: join the ring under this identity "+
		"(--sharding=ring, its POD_NAME); alone, as today, when empty")
	flag.StringVar(&member.namespace, "ring-namespace", ringNamespace, "manager role: the namespace of the ring's Leases")
	flag.StringVar(&cfg.repoRoot, "repo", ".", "repository root: holds bin/ and config/crd/bases")
	flag.StringVar(&cfg.out, "out", "", "also write the results table (Markdown) to this file")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write the results (every row, with its numbers) as JSON to this file, for -compare")
	compare := flag.String("compare", "", "BASE.json,NEW.json: print both runs' tables and, for every numeric row, "+
		"the ratio new / base; runs nothing")
	flag.Parse()

	if *role == "manager" {
		member.leases = cfg.leases
		if err := runManager(*kubeconfig, cfg.concurrency, member); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
		return
	}
	if *compare != "" {
		if err := compareRuns(os.Stdout, *compare); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	var err error
	if cfg.phases, err = parsePhases(*phases); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	phasesGiven := false
	flag.Visit(func(f *flag.Flag) { phasesGiven = phasesGiven || f.Name == "phases" })
	if err := cfg.checkRing(phasesGiven); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if cfg.window == 0 {
		cfg.window = 6 * cfg.interval
	}
	if cfg.qps == 0 {
		cfg.qps = max(100, int(float64(cfg.tasks)/cfg.interval.Seconds()))
	}
	if err := cfg.resolvePaths(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// resolvePaths makes the repository root, the manager binary and the profile directory absolute, and names
// the manager binary.
func (c *config) resolvePaths() error {
	root, err := filepath.Abs(c.repoRoot)
	if err != nil {
		return err
	}
	c.repoRoot = root
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if c.managerBin == "" {
		c.managerBin = self
		if c.managerLabel == "" {
			c.managerLabel = "current"
		}
	}
	if c.managerBin, err = filepath.Abs(c.managerBin); err != nil {
		return err
	}
	if _, err := os.Stat(c.managerBin); err != nil {
		return fmt.Errorf("-manager-bin: %w", err)
	}
	if c.managerLabel == "" {
		c.managerLabel = filepath.Base(c.managerBin)
	}
	if c.profileDir != "" {
		if c.profileDir, err = filepath.Abs(c.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// checkRing checks the ring flags against the phases. With a ring, finish and slow are left out of the default
// phases (they need one manager, and change the tasks the ring is measured with) and refused when asked for.
func (c *config) checkRing(phasesGiven bool) error {
	if c.replicas < 1 {
		return fmt.Errorf("-replicas must be at least 1")
	}
	if c.kill && !c.ringRuns() {
		return fmt.Errorf("-kill needs -replicas 2 or more")
	}
	if !c.ringRuns() {
		return nil
	}
	if c.unrelatedSecretsMiB > 0 {
		return fmt.Errorf("-unrelated-secrets-mib and -replicas are separate runs")
	}
	if !c.has(phaseSteady) {
		return fmt.Errorf("-replicas needs the steady phase: the replicas are measured against the single replica's steady window")
	}
	if c.leases.retryPeriod <= 0 || c.leases.retryPeriod >= c.leases.renewDeadline || c.leases.renewDeadline >= c.leases.duration {
		return fmt.Errorf("lease timings must satisfy 0 < -lease-retry-period < -lease-renew-deadline < -lease-duration")
	}
	single := slices.DeleteFunc(slices.Clone(c.phases), func(p string) bool { return p == phaseFinish || p == phaseSlow })
	if len(single) != len(c.phases) && phasesGiven {
		return fmt.Errorf("-phases: finish and slow run on one manager; with -replicas only warmup, steady and restart run before the ring")
	}
	c.phases = single
	return nil
}
