package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// stepC is the change of progress each task makes in the ring's steady window, as stepB is in the single
// replica's: both windows write the same number of statuses.
var stepC = vendorsim.Step{Phase: vendorsim.Running, Progress: 80, Message: "Nearly done"}

// replica is one ring member's process.
type replica struct {
	identity string
	proc     *managerProcess
}

// replicaSet is the ring's replicas. sleep and waitFor fail when a live one ends; one that is killed or
// stopped on purpose leaves live first.
type replicaSet struct {
	live []*replica
	all  []*replica
}

func (s *replicaSet) exited() (bool, error) {
	for _, r := range s.live {
		if done, err := r.proc.exited(); done {
			return true, fmt.Errorf("replica %s: %v", r.identity, err)
		}
	}
	return false, nil
}

// identities returns the live replicas' identities, sorted as the ring sorts its members.
func (s *replicaSet) identities() []string {
	ids := make([]string, 0, len(s.live))
	for _, r := range s.live {
		ids = append(ids, r.identity)
	}
	slices.Sort(ids)
	return ids
}

func (s *replicaSet) leave(r *replica) {
	s.live = slices.DeleteFunc(s.live, func(x *replica) bool { return x == r })
}

// stopAll stops every replica still running, gracefully.
func (s *replicaSet) stopAll() {
	for _, r := range s.all {
		if done, _ := r.proc.exited(); !done {
			_ = r.proc.stop()
		}
	}
	s.live = nil
}

// startReplica starts a ring member with the next identity: replica-1, replica-2, ... as a Deployment gives
// each new pod a new name.
func (b *bench) startReplica() (*replica, error) {
	b.replicasStarted++
	identity := fmt.Sprintf("replica-%d", b.replicasStarted)
	start := b.managerStart
	start.logPath = filepath.Join(b.workDir, identity+".log")
	start.ring = ringMember{identity: identity, namespace: ringNamespace, leases: b.cfg.leases}
	p, err := startManager(start)
	if err != nil {
		return nil, err
	}
	b.processes++
	r := &replica{identity: identity, proc: p}
	b.ring.live = append(b.ring.live, r)
	b.ring.all = append(b.ring.all, r)
	return r, nil
}

// leaseHeld reports whether the replica's Lease exists with the replica as its holder: it is on the ring for
// the others once their watch sees that.
func (b *bench) leaseHeld(ctx context.Context, r *replica) bool {
	var lease coordinationv1.Lease
	key := client.ObjectKey{Namespace: ringNamespace, Name: ringName + "-" + r.identity}
	if err := b.client.Get(ctx, key, &lease); err != nil {
		return false
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "") == r.identity
}

// owners returns, for every task, the index in members of the replica the ring gives it: the ring is
// deterministic given the members, so the bench computes what each replica computes.
func (b *bench) owners(members []string) ([]int, error) {
	ring := sharding.NewRing(members)
	out := make([]int, b.cfg.tasks)
	for i := range out {
		uid := b.watcher.uid(i)
		if uid == "" {
			return nil, fmt.Errorf("task %s was never seen by the bench's watch: no UID to place on the ring", taskName(i))
		}
		out[i] = slices.Index(members, ring.Owner(string(uid)))
	}
	return out, nil
}

// lateTolerance is how late beyond its interval a poll may come and still count as on time: a poll's own
// scheduling (queue, worker, rate limiter), 5% of the interval as the polls-per-interval target allows.
func lateTolerance(interval time.Duration) time.Duration { return interval / 20 }

// lateness is how late a set of tasks was polled in a gap window.
type lateness struct {
	tasks int
	// worst is the task with the longest gap, -1 when none was polled; gap is its gap.
	worst int
	uid   types.UID
	gap   taskGap
	// late counts the tasks whose longest gap went beyond the interval + lateTolerance.
	late int
}

func latenessOf(gaps []taskGap, tasks []int, interval time.Duration, uid func(int) types.UID) lateness {
	l := lateness{tasks: len(tasks), worst: -1}
	for _, i := range tasks {
		g := gaps[i]
		if g.gap > interval+lateTolerance(interval) {
			l.late++
		}
		if l.worst < 0 || g.gap > l.gap.gap {
			l.worst, l.gap = i, g
		}
	}
	if l.worst >= 0 {
		l.uid = uid(l.worst)
	}
	return l
}

// beyond is the longest gap less the interval: how late the latest task was.
func (l lateness) beyond(interval time.Duration) time.Duration { return max(0, l.gap.gap-interval) }

// replicaFigures are one replica's over the ring's steady window and at its end.
type replicaFigures struct {
	identity string
	cpu      time.Duration
	// polls are the polls of the tasks the ring gives it; tasksByRing how many those are.
	polls       int64
	tasksByRing int
	report      ringReport
	heapLive    uint64
	rssKiB      int64
	hwmKiB      int64
}

// ringResults are the ring phases' figures.
type ringResults struct {
	ran      bool
	replicas int
	// members is when every replica's ring first had all members, allPolled when every task had been polled
	// since the first replica started, both from that start; polled is how many were.
	members, allPolled time.Duration
	polled             int

	steady       window
	steadyLate   lateness
	steadyDups   int64
	steadyWrites int64
	// steadyFrom is when the steady window started (since the bench's start), for the duplicates' times.
	steadyFrom, steadyTo time.Duration
	figures              []replicaFigures
	// busy is the CPU time used in the steady window by the replicas, the control plane and the bench itself.
	busy usage

	kill    *killResults
	rollout *rolloutResults
	// duplicates are examples of duplicate polls in the measured windows, the first ones of each.
	duplicates []duplicatePoll
	uids       []types.UID
}

type killResults struct {
	victim                 string
	at                     time.Duration // since the bench's start
	window                 time.Duration
	dead, others           lateness
	firstRepoll, allRepoll time.Duration // since the kill
	repolled               int
	dups                   int64
}

// repollText says when the dead replica's tasks were polled again.
func (k *killResults) repollText() string {
	if k.repolled == 0 {
		return fmt.Sprintf("none polled again within the %s measured", k.window)
	}
	return fmt.Sprintf("first polled again %s after the kill, %d/%d by %s after it (measured for %s)", round(k.firstRepoll),
		k.repolled, k.dead.tasks, round(k.allRepoll), k.window)
}

type rolloutResults struct {
	from, window time.Duration
	steps        []rolloutStep
	all          lateness
	dups         int64
}

// rolloutStep is one replica replaced: the new one started, held its Lease after leaseAfter, then the old one
// (none for the killed replica's replacement) got SIGTERM and exited after stopTook.
type rolloutStep struct {
	started, old string
	leaseAfter   time.Duration
	stopTook     time.Duration
	stopErr      error
}

// ringPhases runs the ring phases with the single manager stopped.
func (b *bench) ringPhases(ctx context.Context) error {
	rr := &b.r.ring
	rr.ran, rr.replicas = true, b.cfg.replicas
	if err := b.ringStart(ctx); err != nil {
		return err
	}
	if err := b.ringSteady(ctx); err != nil {
		return err
	}
	if b.cfg.kill {
		if err := b.killOne(ctx); err != nil {
			return err
		}
	}
	if err := b.rollout(ctx); err != nil {
		return err
	}
	rr.uids = make([]types.UID, b.cfg.tasks)
	for i := range rr.uids {
		rr.uids[i] = b.watcher.uid(i)
	}
	return nil
}

// ringStart starts the replicas together and waits until each sees all of them and every task was polled.
func (b *bench) ringStart(ctx context.Context) error {
	n, rr := b.cfg.replicas, &b.r.ring
	l := b.cfg.leases
	logf("Phase 6, ring: starting %d replicas (Leases %s/%s/%s in namespace %s)", n, l.duration, l.renewDeadline, l.retryPeriod, ringNamespace)
	b.counter.setMark()
	started := b.counter.since()
	for range n {
		if _, err := b.startReplica(); err != nil {
			return err
		}
	}
	want := b.ring.identities()
	complete := func() bool {
		for _, r := range b.ring.live {
			if !slices.Equal(r.proc.ringSeen(), want) {
				return false
			}
		}
		return true
	}
	ok, err := waitFor(ctx, l.duration+2*time.Minute, &b.ring, complete)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the replicas' rings did not reach all %d members within %s", n, l.duration+2*time.Minute)
	}
	rr.members = b.counter.since() - started
	timeout := 3*b.cfg.interval + l.duration + time.Minute
	ok, err = waitFor(ctx, timeout, &b.ring, b.allPolledSinceMark)
	if err != nil {
		return err
	}
	rr.allPolled = b.counter.since() - started
	for i := range b.cfg.tasks {
		if b.counter.firstAfterMark[i].Load() > 0 {
			rr.polled++
		}
	}
	if !ok {
		return fmt.Errorf("the ring polled %d of %d tasks within %s of its start", rr.polled, b.cfg.tasks, timeout)
	}
	logf("  every ring had all %d members %s after the start; every task polled %s after it", n,
		rr.members.Round(100*time.Millisecond), rr.allPolled.Round(100*time.Millisecond))
	logf("  letting the schedule settle for one interval")
	return sleep(ctx, b.cfg.interval, &b.ring)
}

// ringSteady measures the ring in a window as long as the single replica's, every task changing its progress
// once as there.
func (b *bench) ringSteady(ctx context.Context) error {
	w, rr := b.cfg.window, &b.r.ring
	logf("Phase 6, ring steady state: %s with all %d tasks running on %d replicas, each task changing its progress once",
		w, b.cfg.tasks, len(b.ring.live))
	for i := range b.cfg.tasks {
		d := time.Duration((0.1 + 0.5*rand.Float64()) * float64(w))
		b.sim.AddTimedTask(taskID(i), d, stepB, stepC)
	}
	members := b.ring.identities()
	owners, err := b.owners(members)
	if err != nil {
		return err
	}
	replicas := slices.Clone(b.ring.live)
	cpu0 := make([]time.Duration, len(replicas))
	for k, r := range replicas {
		cpu0[k], _ = procCPU(r.proc.pid())
	}
	s0, busy0, w0, d0 := b.counter.snapshot(), b.busy(), b.watcher.totalWrites.Load(), b.counter.duplicates.Load()
	b.counter.takeDuplicates() // the single replica's and the ring's start are not measured
	b.counter.startGapWindow()
	rr.steadyFrom = b.counter.since()
	if err := sleep(ctx, w, &b.ring); err != nil {
		return err
	}
	s1, busy1, w1, d1 := b.counter.snapshot(), b.busy(), b.watcher.totalWrites.Load(), b.counter.duplicates.Load()
	rr.steadyTo = s1.at
	cpu1 := make([]time.Duration, len(replicas))
	for k, r := range replicas {
		cpu1[k], _ = procCPU(r.proc.pid())
	}
	rr.steady = measureWindow(s0, s1, usage{}, usage{}, allTasks(b.cfg.tasks), b.cfg.interval)
	rr.busy = usage{manager: busy1.manager - busy0.manager, controlPlane: busy1.controlPlane - busy0.controlPlane,
		bench: busy1.bench - busy0.bench, machine: busy1.machine - busy0.machine}
	rr.steadyLate = latenessOf(b.counter.gaps(s1.at), allTasks(b.cfg.tasks), b.cfg.interval, b.watcher.uid)
	rr.steadyDups, rr.steadyWrites = d1-d0, w1-w0
	rr.duplicates = append(rr.duplicates, b.counter.takeDuplicates()...)
	for k, r := range replicas {
		f := replicaFigures{identity: r.identity, cpu: cpu1[k] - cpu0[k]}
		own := slices.Index(members, r.identity)
		for i, o := range owners {
			if o == own {
				f.tasksByRing++
				f.polls += int64(rr.steady.pollDelta[i])
			}
		}
		report, mem, err := r.proc.ring()
		if err != nil {
			return fmt.Errorf("replica %s: %w", r.identity, err)
		}
		f.report, f.heapLive = report, mem.HeapAlloc
		f.rssKiB, _ = procMemKiB(r.proc.pid(), "VmRSS")
		f.hwmKiB, _ = procMemKiB(r.proc.pid(), "VmHWM")
		rr.figures = append(rr.figures, f)
	}
	logf("  %.3f polls per task per interval, %d duplicate polls, longest gap %s (%d tasks late beyond %s)",
		rr.steady.pollsPerTaskInterval(), rr.steadyDups, rr.steadyLate.gap.gap.Round(10*time.Millisecond), rr.steadyLate.late,
		lateTolerance(b.cfg.interval))
	return nil
}

// busy is the CPU time so far of the ring's live replicas, the control plane and the bench itself.
func (b *bench) busy() usage {
	var u usage
	for _, r := range b.ring.live {
		d, _ := procCPU(r.proc.pid())
		u.manager += d
	}
	u.controlPlane = cpuOf(b.cp)
	u.bench, _ = procCPU(os.Getpid())
	u.machine, _ = machineBusy()
	return u
}

// killOne kills the first replica (SIGKILL) and measures until its Lease has long expired.
func (b *bench) killOne(ctx context.Context) error {
	victim := b.ring.live[0]
	members := b.ring.identities()
	owners, err := b.owners(members)
	if err != nil {
		return err
	}
	var dead, others []int
	for i, o := range owners {
		if members[o] == victim.identity {
			dead = append(dead, i)
		} else {
			others = append(others, i)
		}
	}
	l := b.cfg.leases
	k := &killResults{victim: victim.identity, window: l.duration + 2*l.retryPeriod + 2*b.cfg.interval}
	logf("Phase 7, kill: kill -9 of %s (%d tasks); measuring for %s (LeaseDuration + 2 × RetryPeriod + 2 intervals)",
		victim.identity, len(dead), k.window)
	d0 := b.counter.duplicates.Load()
	b.counter.takeDuplicates() // between the windows: not measured
	b.counter.startGapWindow()
	b.counter.setMark()
	k.at = b.counter.since()
	b.ring.leave(victim)
	victim.proc.kill()
	if err := sleep(ctx, k.window, &b.ring); err != nil {
		return err
	}
	end := b.counter.since()
	gaps := b.counter.gaps(end)
	k.dead = latenessOf(gaps, dead, b.cfg.interval, b.watcher.uid)
	k.others = latenessOf(gaps, others, b.cfg.interval, b.watcher.uid)
	k.dups = b.counter.duplicates.Load() - d0
	b.r.ring.duplicates = append(b.r.ring.duplicates, b.counter.takeDuplicates()...)
	for _, i := range dead {
		t := time.Duration(b.counter.firstAfterMark[i].Load())
		if t == 0 {
			continue
		}
		since := t - k.at
		if k.repolled == 0 || since < k.firstRepoll {
			k.firstRepoll = since
		}
		k.allRepoll = max(k.allRepoll, since)
		k.repolled++
	}
	b.r.ring.kill = k
	logf("  the dead replica's tasks: %s; longest gap %s; the others' longest gap %s; %d duplicate polls", k.repollText(),
		k.dead.gap.gap.Round(100*time.Millisecond), k.others.gap.gap.Round(100*time.Millisecond), k.dups)
	return nil
}

// rollout replaces every replica, one at a time, as a Deployment's rolling update with surge 1 does: a new one
// (a new identity) starts, and once its Lease is held the old one gets SIGTERM. After a kill, the killed
// replica's replacement comes first.
func (b *bench) rollout(ctx context.Context) error {
	ro := &rolloutResults{}
	old := slices.Clone(b.ring.live)
	logf("Phase 8, rolling restart of %d replicas (surge 1: the new one holds its Lease before the old one gets SIGTERM)", b.cfg.replicas)
	d0 := b.counter.duplicates.Load()
	b.counter.takeDuplicates() // between the windows: not measured
	b.counter.startGapWindow()
	ro.from = b.counter.since()
	if b.cfg.kill {
		step, err := b.replace(ctx, nil)
		if err != nil {
			return err
		}
		ro.steps = append(ro.steps, step)
		old = append(old, b.ring.live[len(b.ring.live)-1])
	}
	for _, r := range old {
		step, err := b.replace(ctx, r)
		if err != nil {
			return err
		}
		ro.steps = append(ro.steps, step)
	}
	// Long enough for the last replica's tasks to settle (one RetryPeriod) and reach their moment of the interval.
	if err := sleep(ctx, 2*b.cfg.interval, &b.ring); err != nil {
		return err
	}
	end := b.counter.since()
	ro.window = end - ro.from
	ro.all = latenessOf(b.counter.gaps(end), allTasks(b.cfg.tasks), b.cfg.interval, b.watcher.uid)
	ro.dups = b.counter.duplicates.Load() - d0
	b.r.ring.duplicates = append(b.r.ring.duplicates, b.counter.takeDuplicates()...)
	b.r.ring.rollout = ro
	logf("  rolled in %s; longest gap %s (%d tasks late beyond %s); %d duplicate polls", ro.window.Round(100*time.Millisecond),
		ro.all.gap.gap.Round(100*time.Millisecond), ro.all.late, lateTolerance(b.cfg.interval), ro.dups)
	return nil
}

// replace starts a new replica and, once its Lease is held, stops old (SIGTERM); old is nil for a replica that
// is gone already.
func (b *bench) replace(ctx context.Context, old *replica) (rolloutStep, error) {
	started := time.Now()
	r, err := b.startReplica()
	if err != nil {
		return rolloutStep{}, err
	}
	step := rolloutStep{started: r.identity}
	timeout := b.cfg.leases.duration + time.Minute
	ok, err := waitFor(ctx, timeout, &b.ring, func() bool { return b.leaseHeld(ctx, r) })
	if err != nil {
		return step, err
	}
	if !ok {
		return step, fmt.Errorf("replica %s did not hold its Lease within %s", r.identity, timeout)
	}
	step.leaseAfter = time.Since(started)
	if old == nil {
		logf("  %s (replacing the killed replica) holds its Lease after %s", r.identity, step.leaseAfter.Round(100*time.Millisecond))
		return step, nil
	}
	step.old = old.identity
	b.ring.leave(old)
	stopping := time.Now()
	step.stopErr = old.proc.stop()
	step.stopTook = time.Since(stopping)
	logf("  %s holds its Lease after %s; %s stopped (SIGTERM) in %s", r.identity, step.leaseAfter.Round(100*time.Millisecond),
		old.identity, step.stopTook.Round(100*time.Millisecond))
	return step, nil
}
