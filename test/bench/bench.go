package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

const (
	benchNamespace = "bench"
	simToken       = "bench-token"
	simUser        = "bench-user"
	simPassword    = "bench-password"
)

// The simulated answers. stepA is every task's answer from the start; stepB is the one change of progress
// each task makes in the steady phase. API Gateway reports no progress or message while a task runs, so for it
// A and B are the same observation; the other vendors show the change.
var (
	stepA = vendorsim.Step{Phase: vendorsim.Running, Progress: 10, Message: "Working"}
	stepB = vendorsim.Step{Phase: vendorsim.Running, Progress: 60, Message: "Half way"}
	stepZ = vendorsim.Step{Phase: vendorsim.Succeeded}
)

// taskID returns the vendor task ID of task i, shaped as its vendor's IDs are and unique across vendors (the
// simulator keeps one map of tasks for all vendors).
func taskID(i int) string {
	switch i % numVendors {
	case vAPIG:
		return fmt.Sprintf("a%031x", i)
	case vNI:
		return fmt.Sprintf("TASK_PROGRESS_application.APP_BULK_SAVE.%d", 1700000000000+i)
	case vTO:
		return fmt.Sprint(10000000 + i)
	default:
		return fmt.Sprintf("f%031x", i)
	}
}

func backendName(v int) string { return [numVendors]string{"apig", "vrni", "to", "zstack"}[v] }

// bench holds one run's moving parts and results.
type bench struct {
	cfg     config
	start   time.Time
	counter *counter
	watcher *watcher
	sim     *vendorsim.Simulator
	prof    *profiler // nil without -profile-dir
	cp      []int     // control plane PIDs
	r       results

	client  client.Client
	workDir string
	// managerStart starts a manager process as the single replica's was started (without its profiler).
	managerStart managerStart
	// processes counts the manager processes started.
	processes int
	// ring is the ring's replicas (-replicas); replicasStarted numbers their identities.
	ring            replicaSet
	replicasStarted int
}

func run(cfg config) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, start: time.Now()}
	b.r.cfg = cfg
	b.r.manager = readManagerBinary(cfg.managerBin, cfg.managerLabel, cfg.managerRev)
	logf("Manager binary: %s", b.r.manager)
	workDir, err := os.MkdirTemp("", "asynctask-bench-")
	if err != nil {
		return err
	}
	logf("Work directory (manager logs): %s", workDir)
	b.workDir = workDir

	// Setup, not measured: control plane, simulator, objects.
	bin := filepath.Join(cfg.repoRoot, "bin")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(cfg.repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: bin,
	}
	logf("Starting the local control plane from %s ...", bin)
	restCfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane (run `make controlplane`): %w", err)
	}
	defer func() { err = errors.Join(err, env.Stop()) }()
	restCfg.QPS = -1 // no client-side throttling: the API server's priority and fairness decides, as for the manager
	b.cp = controlPlanePIDs()
	kubeconfig, err := writeKubeconfig(env, workDir)
	if err != nil {
		return err
	}
	c, err := client.NewWithWatch(restCfg, client.Options{Scheme: runtimeScheme()})
	if err != nil {
		return err
	}
	b.client = c

	n := cfg.tasks
	ids := make([]string, n)
	for i := range ids {
		ids[i] = taskID(i)
	}
	b.sim = vendorsim.New(vendorsim.Credentials{Token: simToken, Username: simUser, Password: simPassword})
	for _, id := range ids {
		b.sim.AddTimedTask(id, time.Hour, stepA)
	}
	b.counter = newCounter(b.sim.Handler(), ids, cfg.interval)
	b.counter.start = b.start
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	server := &http.Server{Handler: b.counter, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	defer func() { _ = server.Close() }()
	simURL := "http://" + listener.Addr().String()

	setupStarted := time.Now()
	if err := createObjects(ctx, c, simURL, cfg); err != nil {
		return err
	}
	logf("Created %d AsyncTasks and 4 TaskBackends in %s (setup, not measured)", n, time.Since(setupStarted).Round(time.Second))
	if cfg.finished > 0 {
		finishedStarted := time.Now()
		logf("Creating %d finished AsyncTasks (status Succeeded) with %d workers (setup, not measured) ...", cfg.finished, 3*cfg.createWorkers)
		if err := createFinished(ctx, c, cfg); err != nil {
			return err
		}
		logf("  created in %s", time.Since(finishedStarted).Round(time.Second))
	}
	b.r.setup = time.Since(setupStarted)

	b.watcher = newWatcher(b.start, n)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watchReady := make(chan struct{})
	go func() {
		if err := b.watcher.run(watchCtx, c, benchNamespace, watchReady); err != nil && watchCtx.Err() == nil {
			logf("watch failed: %v", err)
		}
	}()
	select {
	case <-watchReady:
	case <-time.After(5 * time.Minute):
		return errors.New("the watch of AsyncTasks did not start")
	}

	start := managerStart{bin: cfg.managerBin, kubeconfig: kubeconfig, concurrency: cfg.concurrency}
	if cfg.goMemLimit != "" {
		// As the Deployment runs it: GOMEMLIMIT from limits.memory, less the tenth cmd/main.go keeps as headroom.
		start.env = append(start.env, "GOMEMLIMIT="+cfg.goMemLimit)
	}
	b.managerStart = start
	start1 := start
	start1.logPath = filepath.Join(workDir, "manager-1.log")
	if cfg.profileDir != "" {
		if b.prof, err = newProfiler(cfg.profileDir, cfg.managerLabel, cfg.managerBin); err != nil {
			return err
		}
		start1.env = append(slices.Clone(start.env), b.prof.env()...)
	}
	b.counter.setMark() // the warm-up's first polls
	mgr1, err := startManager(start1)
	if err != nil {
		return err
	}
	b.processes++
	defer func() {
		if done, _ := mgr1.exited(); !done {
			_ = mgr1.stop()
		}
	}()
	if err := b.warmUp(ctx, mgr1); err != nil {
		return err
	}
	if cfg.unrelatedSecretsMiB > 0 {
		return b.unrelatedSecrets(ctx, c, mgr1)
	}
	mgr := mgr1
	if cfg.has(phaseSteady) {
		if err := b.steady(ctx, mgr1); err != nil {
			return err
		}
	}
	if cfg.has(phaseRestart) {
		start2 := start
		start2.logPath = filepath.Join(workDir, "manager-2.log")
		mgr2, err := b.restart(ctx, mgr1, start2)
		if mgr2 != nil {
			defer func() {
				if done, _ := mgr2.exited(); !done {
					_ = mgr2.stop()
				}
			}()
		}
		if err != nil {
			return err
		}
		mgr = mgr2
	}
	if cfg.ringRuns() {
		b.notePeak(mgr)
		logf("Stopping the single manager (SIGTERM) for the ring")
		if err := mgr.stop(); err != nil {
			logf("  the single manager: %v", err)
		}
		defer b.ring.stopAll()
		if err := b.ringPhases(ctx); err != nil {
			return err
		}
		b.ring.stopAll() // nothing is measured any more
	}
	if cfg.has(phaseFinish) {
		if err := b.finish(ctx, mgr); err != nil {
			return err
		}
	}
	if cfg.has(phaseSlow) {
		if err := b.slow(ctx, mgr); err != nil {
			return err
		}
	}
	b.notePeak(mgr)
	b.collectWrites()
	b.r.processes = b.processes
	for v := range numVendors {
		b.r.logins[v] = b.counter.byKind[v][reqLogin].Load()
	}
	b.r.finishedRequests, b.r.finishedRequestsByVendor = b.counter.finishedRequestCount()
	b.r.finishedWrites = b.watcher.finishedWrites.Load()
	b.r.finishedListed = b.watcher.finishedSeen
	b.r.watchGaps = b.watcher.gaps
	if b.prof != nil {
		_ = mgr.stop() // pprof below takes CPU; nothing is measured any more
		b.prof.writeTops()
		b.r.profileDir, b.r.profileProblems = b.prof.dir, b.prof.problems()
	}
	report := b.r.markdown()
	fmt.Print("\n" + report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return err
		}
	}
	if cfg.jsonOut != "" {
		if err := b.r.writeJSON(cfg.jsonOut, report); err != nil {
			return err
		}
	}
	return nil
}

// notePeak records the manager's peak RSS (VmHWM) so far; the run's is the largest of its processes.
func (b *bench) notePeak(mgr *managerProcess) {
	if hwm, err := procMemKiB(mgr.pid(), "VmHWM"); err == nil {
		b.r.peakRSSKiB = max(b.r.peakRSSKiB, hwm)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	raw, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, raw, 0o600)
}

// createObjects creates the namespace, one Secret and TaskBackend per vendor and the tasks, with a few workers.
func createObjects(ctx context.Context, c client.Client, simURL string, cfg config) error {
	interval := &metav1.Duration{Duration: cfg.interval}
	timeout := &metav1.Duration{Duration: 10 * time.Second}
	limit := &v1alpha1.RateLimit{QPS: int32(cfg.qps), Burst: int32(cfg.burst)}
	specs := [numVendors]v1alpha1.TaskBackendSpec{
		vAPIG: {Type: v1alpha1.BackendTypeAPIGateway, APIGateway: &v1alpha1.APIGatewaySettings{
			ProjectID: "0605767a3300d5762fb7c0186d9e1779", InstanceID: "eddc4d25480b4cd6b512f270a1b8b341"}},
		vNI: {Type: v1alpha1.BackendTypeNetworkInsight},
		vTO: {Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}},
		vZS: {Type: v1alpha1.BackendTypeZStack},
	}
	// A mix of credential methods: fixed tokens for API Gateway and Traffic Ops (whose token login still makes
	// one session), username and password logins for Network Insight and ZStack.
	secrets := [numVendors]map[string]string{
		vAPIG: {"token": simToken},
		vNI:   {"username": simUser, "password": simPassword},
		vTO:   {"token": simToken},
		vZS:   {"accountName": simUser, "password": simPassword},
	}
	objects := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}}
	for v := range numVendors {
		spec := specs[v]
		spec.URL, spec.PollInterval, spec.RequestTimeout, spec.RateLimit = simURL, interval, timeout, limit
		spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: backendName(v) + "-creds"}
		objects = append(objects,
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: backendName(v) + "-creds"}, StringData: secrets[v]},
			&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: backendName(v)}, Spec: spec})
	}
	for _, obj := range objects {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	return forEach(ctx, cfg.tasks, cfg.createWorkers, func(ctx context.Context, i int) error {
		task := &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: taskName(i)},
			Spec: v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: backendName(i % numVendors)},
				TaskID: taskID(i)},
		}
		if err := c.Create(ctx, task); err != nil {
			return fmt.Errorf("creating task %d: %w", i, err)
		}
		return nil
	})
}

// forEach calls do for 0 ≤ i < n on at most workers goroutines and returns the first error; once one failed,
// no new call starts and ctx of the running ones is cancelled.
func forEach(ctx context.Context, n, workers int, do func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return do(ctx, i) })
	}
	return g.Wait()
}

// watched is what sleep and waitFor watch: a manager process, or the ring's replicas.
type watched interface {
	exited() (bool, error)
}

// sleep waits d, or fails when ctx ends or the manager exits.
func sleep(ctx context.Context, d time.Duration, mgr watched) error {
	deadline := time.Now().Add(d)
	for {
		if done, err := mgr.exited(); done {
			return fmt.Errorf("the manager exited: %v", err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, 200*time.Millisecond)):
		}
	}
}

// waitFor polls cond until it holds or timeout passes; it reports whether it held.
func waitFor(ctx context.Context, timeout time.Duration, mgr watched, cond func() bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := sleep(ctx, 100*time.Millisecond, mgr); err != nil {
			return false, err
		}
	}
	return true, nil
}

// usage is the CPU time of the manager (or the ring's replicas) and of the control plane at one moment; bench,
// the bench's own (simulator, counter, watch), and machine, every process's (machineBusy), only where the
// ring's is measured.
type usage struct {
	manager, controlPlane, bench, machine time.Duration
}

func (b *bench) usage(mgr *managerProcess) usage {
	d, _ := procCPU(mgr.pid())
	return usage{manager: d, controlPlane: cpuOf(b.cp)}
}

// startup is how a new manager process came up: when its asynctask controller's cache synced and when every
// running task had been polled once since it started. Durations are since the process started.
type startup struct {
	synced    time.Duration
	syncSeen  bool
	polled    int
	allPolled bool
	firstPoll time.Duration
	lastPoll  time.Duration
	// forced is what the backends' rate limit forces for one poll of every task (rateLimitForced).
	forced time.Duration
}

// fromSync is the time from the cache sync until every running task was polled.
func (s startup) fromSync() time.Duration { return s.lastPoll - s.synced }

// allPolledSinceMark reports whether every running task was polled since the counter's mark.
func (b *bench) allPolledSinceMark() bool {
	for i := range b.cfg.tasks {
		if b.counter.firstAfterMark[i].Load() == 0 {
			return false
		}
	}
	return true
}

// measureStartup reads the first poll of every task since the mark and the cache sync of mgr.
func (b *bench) measureStartup(mgr *managerProcess) startup {
	started := mgr.started.Sub(b.start) // the counter counts from b.start
	s := startup{forced: b.rateLimitForced()}
	s.synced, s.syncSeen = mgr.cacheSynced()
	var first, last time.Duration
	for i := range b.cfg.tasks {
		t := time.Duration(b.counter.firstAfterMark[i].Load())
		if t == 0 {
			continue
		}
		s.polled++
		if first == 0 || t < first {
			first = t
		}
		last = max(last, t)
	}
	s.allPolled = s.polled == b.cfg.tasks
	if s.polled > 0 {
		s.firstPoll, s.lastPoll = first-started, last-started
	}
	return s
}

// warmUp starts with every task due at once and waits until every task was polled and shows Running.
func (b *bench) warmUp(ctx context.Context, mgr *managerProcess) error {
	n := b.cfg.tasks
	logf("Phase 1, warm-up: manager started (pid %d, MaxConcurrentReconciles %s); waiting until all %d tasks show Running",
		mgr.pid(), concurrencyText(b.cfg.concurrency), n)
	from := time.Since(b.start)
	ok, err := waitFor(ctx, 15*time.Minute, mgr, func() bool { return b.watcher.runningCount() == n })
	if err != nil {
		return err
	}
	if !ok {
		r := b.watcher.runningCount()
		return fmt.Errorf("only %d of %d tasks showed Running within 15 minutes of the manager's start", r, n)
	}
	b.r.warmUp = time.Since(b.start) - from
	// Every task showing Running was polled; the count below confirms it.
	_, _ = waitFor(ctx, 10*time.Second, mgr, b.allPolledSinceMark)
	b.r.warmStartup = b.measureStartup(mgr)
	ws := b.r.warmStartup
	if ws.syncSeen {
		logf("  cache synced %s after the start; every task polled %s after the sync; every task Running after %s",
			ws.synced.Round(100*time.Millisecond), ws.fromSync().Round(100*time.Millisecond), b.r.warmUp.Round(100*time.Millisecond))
	} else {
		logf("  no \"Starting workers\" line of controller asynctask in the manager's log; every task Running after %s",
			b.r.warmUp.Round(100*time.Millisecond))
	}
	logf("  letting the schedule settle for one interval")
	return sleep(ctx, b.cfg.interval, mgr)
}

// steady measures a window in which every task runs and changes its progress once.
func (b *bench) steady(ctx context.Context, mgr *managerProcess) error {
	w := b.cfg.window
	logf("Phase 2, steady state: %s with all %d tasks running, each changing its progress once", w, b.cfg.tasks)
	for i := range b.cfg.tasks {
		d := time.Duration((0.1 + 0.5*rand.Float64()) * float64(w))
		b.sim.AddTimedTask(taskID(i), d, stepA, stepB)
	}
	var cpuProfile chan struct{}
	// The CPU profile ends inside the window: a whole number of seconds, one short of the window.
	if secs := int(w.Seconds()) - 1; b.prof != nil && secs >= 1 {
		cpuProfile = make(chan struct{})
		logf("  taking a %ds CPU profile of the manager", secs)
		go func() {
			defer close(cpuProfile)
			b.prof.fetch(ctx, "cpu", fmt.Sprintf("profile?seconds=%d", secs), time.Duration(secs)*time.Second+time.Minute)
		}()
	}
	s0, u0, w0 := b.counter.snapshot(), b.usage(mgr), b.watcher.totalWrites.Load()
	bench0, _ := procCPU(os.Getpid())
	machine0, _ := machineBusy()
	from := b.counter.since()
	if err := sleep(ctx, w, mgr); err != nil {
		return err
	}
	s1, u1, w1 := b.counter.snapshot(), b.usage(mgr), b.watcher.totalWrites.Load()
	bench1, _ := procCPU(os.Getpid())
	machine1, _ := machineBusy()
	b.r.steadyBenchCPU, b.r.steadyMachineBusy = bench1-bench0, machine1-machine0
	b.r.steadyBins = b.counter.secondBins(from, b.counter.since())
	b.r.steady = measureWindow(s0, s1, u0, u1, allTasks(b.cfg.tasks), b.cfg.interval)
	b.r.steadyWrites = w1 - w0
	if cpuProfile != nil {
		select {
		case <-cpuProfile:
		case <-time.After(time.Minute):
			logf("  the CPU profile did not end within a minute of the window")
		}
	}
	base, now, err := mgr.memory()
	if err != nil {
		return err
	}
	b.r.heapBaseline, b.r.heapLive = base.HeapAlloc, now.HeapAlloc
	// The single replica's memory, for the ring's replicas to be held against.
	b.r.steadyRSSKiB, _ = procMemKiB(mgr.pid(), "VmRSS")
	b.r.steadyHWMKiB, _ = procMemKiB(mgr.pid(), "VmHWM")
	if b.prof != nil {
		b.prof.fetch(ctx, "heap", "heap?gc=1", time.Minute)
	}
	b.notePeak(mgr)
	logf("  %.3f polls per task per interval, %.1f polls/s, %.2f CPU s per 1,000 polls", b.r.steady.pollsPerTaskInterval(),
		b.r.steady.pollsPerSecond(), b.r.steady.cpuPer1000())
	return nil
}

// restart stops the manager and starts a new process with every task running and none due by its status. It
// counts the vendor requests per second from the new process's start until one interval after every task was
// polled again.
func (b *bench) restart(ctx context.Context, old *managerProcess, start managerStart) (*managerProcess, error) {
	n := b.cfg.tasks
	logf("Phase 3, restart: stopping the manager (SIGTERM) and starting a new process")
	b.notePeak(old)
	stopStarted := time.Now()
	if err := old.stop(); err != nil {
		logf("  the old manager: %v", err)
	}
	b.r.stopTook = time.Since(stopStarted)
	w0 := b.watcher.totalWrites.Load()
	perTask0 := make([]int32, n)
	for i := range perTask0 {
		perTask0[i] = b.watcher.writes[i].Load()
	}
	b.counter.setMark()
	mgr, err := startManager(start)
	if err != nil {
		return nil, err
	}
	b.processes++
	started := mgr.started.Sub(b.start)
	// The rate limit forces (requests per backend - burst) / qps; ZStack makes two requests per running poll.
	forced := b.rateLimitForced()
	timeout := 3*b.cfg.interval + 3*forced + time.Minute
	ok, err := waitFor(ctx, timeout, mgr, b.allPolledSinceMark)
	if err != nil {
		return mgr, err
	}
	st := b.measureStartup(mgr)
	b.r.restartStartup = st
	if !ok {
		st.lastPoll = timeout // not all polled: at least this long
		b.r.restartStartup.lastPoll = timeout
	}
	if st.lastPoll > st.firstPoll {
		b.r.restartCatchUpRate = float64(st.polled) / (st.lastPoll - st.firstPoll).Seconds()
	}
	// Let the rate settle for one more interval, counting requests and writes all along.
	if err := sleep(ctx, b.cfg.interval, mgr); err != nil {
		return mgr, err
	}
	end := b.counter.since()
	b.r.restartBins = b.counter.secondBins(started, end)
	b.r.restartMaxRate = b.counter.maxPerSecond(started, end)
	b.r.restartMaxRateAll = b.counter.maxPerSecondAll(started, end)
	b.r.restartWrites = b.watcher.totalWrites.Load() - w0
	// A write in the restart phase is extra unless it records an observation not written before the restart.
	for i := range n {
		pending := max(0, b.distinctThroughRestart(i)-int(perTask0[i]))
		b.r.restartExtraWrites += int64(max(0, int(b.watcher.writes[i].Load()-perTask0[i])-pending))
	}
	b.r.restartRan = true
	// The new process's heap: it holds the same tasks, but none changed phase in it, so no Event it recorded
	// is still kept by the event broadcaster (which keeps each for about six minutes).
	if base, now, err := mgr.memory(); err == nil {
		b.r.restartHeapBaseline, b.r.restartHeapLive = base.HeapAlloc, now.HeapAlloc
	}
	syncText := "not seen"
	if st.syncSeen {
		syncText = st.synced.Round(100 * time.Millisecond).String()
	}
	all, _ := b.r.restartBinMax()
	logf("  cache synced after %s; first poll %s after the new process started, every task polled again after %s (%d/%d); "+
		"largest second %d req/s (steady %.0f req/s)", syncText, st.firstPoll.Round(100*time.Millisecond),
		st.lastPoll.Round(100*time.Millisecond), st.polled, n, all, b.r.steady.idealRequestsPerSecond())
	return mgr, nil
}

// rateLimitForced is the time the backends' rate limit needs for one poll of every task, for the slowest backend.
func (b *bench) rateLimitForced() time.Duration {
	var worst time.Duration
	for v := range numVendors {
		tasks := tasksOfVendor(b.cfg.tasks, v)
		requests := tasks
		if v == vZS {
			requests *= 2
		}
		d := time.Duration(float64(max(requests-b.cfg.burst, 0)) / float64(b.cfg.qps) * float64(time.Second))
		worst = max(worst, d)
	}
	return worst
}

func tasksOfVendor(n, v int) int { return (n - v + numVendors - 1) / numVendors }

// isFinisher picks every k-th task of each vendor, k = 1/finishFraction; none when the finish phase does not run.
func (b *bench) isFinisher(i int) bool {
	if b.cfg.finishFraction <= 0 || !b.cfg.has(phaseFinish) {
		return false
	}
	k := max(int(1/b.cfg.finishFraction+0.5), 1)
	return (i/numVendors)%k == 0
}

// finish lets a fraction of the tasks finish at known, staggered times and measures detection latency.
func (b *bench) finish(ctx context.Context, mgr *managerProcess) error {
	w := b.cfg.window
	var finishers []int
	finishAt := map[int]time.Duration{}
	for i := range b.cfg.tasks {
		if !b.isFinisher(i) {
			continue
		}
		d := time.Duration((0.05 + 0.65*rand.Float64()) * float64(w))
		finishAt[i] = time.Since(b.start) + d
		b.sim.AddTimedTask(taskID(i), d, stepB, stepZ)
		finishers = append(finishers, i)
	}
	logf("Phase 4, finish: %d tasks finish at staggered times within %s; the others keep running", len(finishers), w)
	s0, u0 := b.counter.snapshot(), b.usage(mgr)
	if err := sleep(ctx, w, mgr); err != nil {
		return err
	}
	s1, u1 := b.counter.snapshot(), b.usage(mgr)
	var others []int
	for i := range b.cfg.tasks {
		if !b.isFinisher(i) {
			others = append(others, i)
		}
	}
	b.r.finishRunning = measureWindow(s0, s1, u0, u1, others, b.cfg.interval)
	b.r.stillRunning = others
	_, _ = waitFor(ctx, 3*b.cfg.interval, mgr, func() bool {
		for _, i := range finishers {
			if b.watcher.readyTime(i) == 0 {
				return false
			}
		}
		return true
	})
	for _, i := range finishers {
		if t := b.watcher.readyTime(i); t > 0 {
			b.r.latencies = append(b.r.latencies, t-finishAt[i])
		}
	}
	b.r.finishers = finishers
	p50, p99, _ := percentiles(b.r.latencies)
	logf("  detected %d/%d; latency p50 %s p99 %s", len(b.r.latencies), len(finishers), p50.Round(10*time.Millisecond), p99.Round(10*time.Millisecond))
	return nil
}

// slow makes every API Gateway request take slowDelay and measures the poll interval the others achieve.
func (b *bench) slow(ctx context.Context, mgr *managerProcess) error {
	w := b.cfg.window
	slowStep := stepB
	slowStep.Delay = b.cfg.slowDelay
	var slowTasks, others []int
	for _, i := range b.r.stillRunning {
		if i%numVendors == vAPIG {
			b.sim.AddTimedTask(taskID(i), time.Hour, slowStep)
			slowTasks = append(slowTasks, i)
		} else {
			others = append(others, i)
		}
	}
	logf("Phase 5, slow backend: every API Gateway request takes %s (requestTimeout 10s); measuring the others for %s", b.cfg.slowDelay, w)
	s0, u0 := b.counter.snapshot(), b.usage(mgr)
	if err := sleep(ctx, w, mgr); err != nil {
		return err
	}
	s1, u1 := b.counter.snapshot(), b.usage(mgr)
	b.r.slowOthers = measureWindow(s0, s1, u0, u1, others, b.cfg.interval)
	b.r.slowSlow = measureWindow(s0, s1, u0, u1, slowTasks, b.cfg.interval)
	// The reference: the same tasks in the finish phase, same manager process, no slow backend.
	b.r.slowReference = measureWindowTasks(b.r.finishRunning, others)
	logf("  others: achieved interval %s (before: %s); slow backend: %s", b.r.slowOthers.achievedInterval().Round(10*time.Millisecond),
		b.r.slowReference.achievedInterval().Round(10*time.Millisecond), b.r.slowSlow.achievedInterval().Round(10*time.Millisecond))
	return nil
}

// distinctThroughRestart is how many distinct observations the simulator gives task i until the restart phase
// ends: A, and B from the steady phase on, except for API Gateway, which shows no progress (A and B read the same).
func (b *bench) distinctThroughRestart(i int) int {
	if b.cfg.has(phaseSteady) && i%numVendors != vAPIG {
		return 2
	}
	return 1
}

// distinctBeforeFinish is how many distinct observations the simulator gives task i before the finish phase:
// those until the restart, and C from the ring's steady window on (API Gateway again excepted). With a ring,
// the finish phase does not run.
func (b *bench) distinctBeforeFinish(i int) int {
	if b.cfg.ringRuns() && i%numVendors != vAPIG {
		return b.distinctThroughRestart(i) + 1
	}
	return b.distinctThroughRestart(i)
}

// collectWrites compares each task's status writes with the distinct observations the simulator produced.
func (b *bench) collectWrites() {
	for i := range b.cfg.tasks {
		distinct := b.distinctBeforeFinish(i)
		if b.isFinisher(i) {
			distinct++
		}
		writes := int(b.watcher.writes[i].Load())
		b.r.totalWrites += writes
		b.r.totalDistinct += distinct
		if excess := writes - distinct; excess > b.r.maxExcess {
			b.r.maxExcess = excess
		}
		if writes > distinct+1 {
			b.r.tasksOverTarget++
		}
	}
}

func allTasks(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func concurrencyText(c int) string {
	if c <= 0 {
		return "16 (the operator's default, --workers)"
	}
	return fmt.Sprint(c)
}
