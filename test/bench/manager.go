package main

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	krt "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/asynctask-operator/asynctask-operator/internal/controller"
	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
)

// memStats is what the manager process reports of its heap, after a garbage collection.
type memStats struct {
	HeapAlloc  uint64 `json:"heapAlloc"`
	HeapInuse  uint64 `json:"heapInuse"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"numGC"`
	Goroutines int    `json:"goroutines"`
}

const (
	statsPrefix = "BENCHSTATS "
	// ringPrefix starts the line a ring member prints on SIGUSR1 before its heap's.
	ringPrefix = "BENCHRING "
)

// The ring the replicas join: cmd/main.go's name for the ring of an unsharded Deployment, its Leases in the
// namespace a manager run outside a cluster is given (--leader-election-namespace).
const (
	ringName      = "asynctask-operator"
	ringNamespace = "default"
)

// ringMember says how a manager process joins the ring (-replicas); without an identity it runs alone, as the
// single replica does.
type ringMember struct {
	identity  string
	namespace string
	leases    leaseTimings
}

// runManager is the manager role: the operator as cmd/main.go sets it up (same cache options and rest config
// defaults, and with -ring-identity the same ring membership as --sharding=ring), with the metrics and probe
// servers off. On SIGUSR1 it collects garbage and prints its heap, and in a ring first what it owns.
func runManager(kubeconfig string, concurrency int, member ringMember) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zap.Options{})))
	if err := os.Setenv("KUBECONFIG", kubeconfig); err != nil {
		return err
	}
	cfg := ctrl.GetConfigOrDie()
	opts, err := controller.ManagerOptions(controller.Options{}, nil)
	if err != nil {
		return err
	}
	// BENCH_PPROF_ADDR serves net/http/pprof on that address, so a run can be profiled (docs/performance.md).
	opts.PprofBindAddress = os.Getenv("BENCH_PPROF_ADDR")
	operatorOpts := controller.Options{Workers: concurrency}.WithLoopbackAllowed()
	if member.identity != "" {
		if operatorOpts.Ring, err = newRingMembership(cfg, member); err != nil {
			return err
		}
	}
	printMem("baseline") // before the manager holds anything: the heap of the code and its libraries alone
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	if err := controller.SetupWithManager(ctx, mgr, operatorOpts); err != nil {
		return err
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			if operatorOpts.Ring != nil {
				printRing()
			}
			printMem("now")
		}
	}()
	// As cmd/main.go: the ring member's Lease outlives the manager, so that on SIGTERM the controllers stop
	// polling before the Lease is released and the others take the tasks over.
	return sharding.RunBeside(ctx, operatorOpts.Ring, mgr.Start)
}

// newRingMembership is cmd/main.go's newRing with the identity and namespace given instead of read from the pod.
func newRingMembership(cfg *rest.Config, member ringMember) (*sharding.Membership, error) {
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return sharding.NewMembership(sharding.Config{Client: clientset, Namespace: member.namespace, Ring: ringName,
		Identity: member.identity, LeaseDuration: member.leases.duration, RenewDeadline: member.leases.renewDeadline,
		RetryPeriod: member.leases.retryPeriod, Log: ctrl.Log.WithName("ring")})
}

// ringReport is what a ring member reports of its share, from its own metrics (controller-runtime's registry,
// gathered in the process: the metrics server is off).
type ringReport struct {
	OwnedTasks    int `json:"ownedTasks"`
	OwnedBackends int `json:"ownedBackends"`
	Members       int `json:"members"`
	Gained        int `json:"gained"`
	Lost          int `json:"lost"`
}

func printRing() {
	var r ringReport
	families, err := metrics.Registry.Gather()
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager: gathering the ring metrics:", err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "asynctask_ring_owned_tasks":
				r.OwnedTasks = int(m.GetGauge().GetValue())
			case "asynctask_ring_owned_backends":
				r.OwnedBackends = int(m.GetGauge().GetValue())
			case "asynctask_ring_members":
				r.Members = int(m.GetGauge().GetValue())
			case "asynctask_ring_handovers_total":
				for _, l := range m.GetLabel() {
					if l.GetName() != "direction" {
						continue
					}
					switch l.GetValue() {
					case "gained":
						r.Gained = int(m.GetCounter().GetValue())
					case "lost":
						r.Lost = int(m.GetCounter().GetValue())
					}
				}
			}
		}
	}
	b, _ := json.Marshal(r)
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Printf("%snow %s\n", ringPrefix, b)
}

var stdoutMu sync.Mutex

func printMem(label string) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, _ := json.Marshal(memStats{HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, Sys: m.Sys, NumGC: m.NumGC, Goroutines: runtime.NumGoroutine()})
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	fmt.Printf("%s%s %s\n", statsPrefix, label, b)
}

func runtimeScheme() *krt.Scheme { return controller.NewScheme() }

// managerProcess is a running manager child process.
type managerProcess struct {
	cmd     *exec.Cmd
	started time.Time
	// done is closed when the process ended; waitErr is then its exit error.
	done    chan struct{}
	waitErr error

	mu       sync.Mutex
	baseline memStats
	latest   memStats
	// latestRing is the ring member's last report (SIGUSR1); zero alone.
	latestRing ringReport
	gotMem     chan struct{}
	// synced is when the manager logged that the asynctask controller's cache synced and its workers start
	// (controller-runtime's "Starting workers"); zero until then.
	synced time.Time
	// ringMembers is the ring as the member last logged it ("Ring changed"); nil until then.
	ringMembers []string
}

// managerStart says how to start a manager process.
type managerStart struct {
	// bin is the binary whose manager role runs: this one, or a bench built from another commit. Only the
	// flags every bench's manager role knows are passed.
	bin         string
	kubeconfig  string
	logPath     string
	concurrency int
	// env is added to the process's environment (BENCH_PPROF_ADDR).
	env []string
	// ring, with an identity, makes the process a ring member (flags only this bench's manager role knows).
	ring ringMember
}

// startManager starts a binary in the manager role; its log (stderr) goes to logPath and is read for the
// asynctask controller's "Starting workers" line.
func startManager(s managerStart) (*managerProcess, error) {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := []string{"-role=manager", "-manager-kubeconfig=" + s.kubeconfig, "-concurrency=" + strconv.Itoa(s.concurrency)}
	if s.ring.identity != "" {
		args = append(args, "-ring-identity="+s.ring.identity, "-ring-namespace="+s.ring.namespace,
			"-lease-duration="+s.ring.leases.duration.String(), "-lease-renew-deadline="+s.ring.leases.renewDeadline.String(),
			"-lease-retry-period="+s.ring.leases.retryPeriod.String())
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	p := &managerProcess{cmd: cmd, done: make(chan struct{}), gotMem: make(chan struct{}, 1)}
	// An io.Writer that is not a file: exec copies the pipe into it, and Wait waits for the copy.
	cmd.Stderr = &lineWriter{w: logFile, line: p.logLine}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), ringPrefix); ok {
				_, body, _ := strings.Cut(line, " ")
				var r ringReport
				if json.Unmarshal([]byte(body), &r) == nil {
					p.mu.Lock()
					p.latestRing = r
					p.mu.Unlock()
				}
				continue
			}
			line, ok := strings.CutPrefix(sc.Text(), statsPrefix)
			if !ok {
				continue
			}
			label, body, _ := strings.Cut(line, " ")
			var m memStats
			if json.Unmarshal([]byte(body), &m) != nil {
				continue
			}
			p.mu.Lock()
			if label == "baseline" {
				p.baseline = m
			} else {
				p.latest = m
			}
			p.mu.Unlock()
			if label != "baseline" {
				select {
				case p.gotMem <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
		_ = logFile.Close()
	}()
	return p, nil
}

func (p *managerProcess) pid() int { return p.cmd.Process.Pid }

// logLine notes the time of the asynctask controller's "Starting workers" line: controller-runtime logs it
// once the controller's caches synced (zap's JSON encoder: {"msg": ..., "controller": ...}); and a ring
// member's ring, from sharding's "Ring changed" line ({"msg": ..., "members": [...]}).
func (p *managerProcess) logLine(line []byte) {
	if !bytes.Contains(line, []byte("Starting workers")) && !bytes.Contains(line, []byte("Ring changed")) {
		return
	}
	var entry struct {
		Msg        string   `json:"msg"`
		Controller string   `json:"controller"`
		Members    []string `json:"members"`
	}
	if json.Unmarshal(line, &entry) != nil {
		return
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case entry.Msg == "Starting workers" && entry.Controller == "asynctask" && p.synced.IsZero():
		p.synced = now
	case entry.Msg == "Ring changed":
		p.ringMembers = append([]string{}, entry.Members...) // [] rather than nil: an empty ring was seen
	}
}

// ringSeen returns the ring's members as the member last logged them; nil before its first ring.
func (p *managerProcess) ringSeen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ringMembers
}

// cacheSynced returns how long after its start the manager's asynctask controller started its workers, and
// false while (or if) that line has not been seen.
func (p *managerProcess) cacheSynced() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.synced.IsZero() {
		return 0, false
	}
	return p.synced.Sub(p.started), true
}

// lineWriter writes through to w and hands every complete line to line. Used by one goroutine (exec's copy).
type lineWriter struct {
	w    io.Writer
	line func([]byte)
	buf  []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	_, _ = l.w.Write(b) // a full disk must not stop the manager: its stderr is drained regardless
	l.buf = append(l.buf, b...)
	rest := l.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		l.line(rest[:i])
		rest = rest[i+1:]
	}
	if len(rest) > 1<<20 {
		rest = nil // a line this long is not the one looked for
	}
	l.buf = append(l.buf[:0], rest...)
	return len(b), nil
}

// managerBinary names the binary whose manager role ran, with what its build info says of its commit.
type managerBinary struct {
	Path      string `json:"path"`
	Label     string `json:"label"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	Time      string `json:"time,omitempty"`
	GoVersion string `json:"goVersion,omitempty"`
	// Note says why there is no revision.
	Note string `json:"note,omitempty"`
}

// readManagerBinary reads the binary's build info (go version -m). Without a vcs.revision there, given (the
// caller's word, -manager-revision) is shown instead.
func readManagerBinary(path, label, given string) managerBinary {
	m := managerBinary{Path: path, Label: label}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		m.Note = "no build info: " + err.Error()
	} else {
		m.GoVersion = info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				m.Revision = s.Value
			case "vcs.modified":
				m.Modified = s.Value == "true"
			case "vcs.time":
				m.Time = s.Value
			}
		}
	}
	switch {
	case m.Revision != "":
	case given != "":
		m.Revision = given
		m.Note = "revision as given by -manager-revision: the build info has none"
	case m.Note == "":
		m.Note = "no vcs.revision in its build info: go build stamps none in a git worktree, with -buildvcs=false, or under go run"
	}
	return m
}

func (m managerBinary) String() string {
	s := fmt.Sprintf("%s `%s`", m.Label, m.Path)
	if m.Revision != "" {
		rev := m.Revision
		if m.Modified {
			rev += " (modified)"
		}
		s += ", vcs.revision " + rev
	}
	if m.GoVersion != "" {
		s += ", " + m.GoVersion
	}
	if m.Note != "" {
		s += " (" + m.Note + ")"
	}
	return s
}

// memory asks the manager for its heap after a GC.
func (p *managerProcess) memory() (baseline, now memStats, err error) {
	select {
	case <-p.gotMem:
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return memStats{}, memStats{}, err
	}
	select {
	case <-p.gotMem:
	case <-time.After(30 * time.Second):
		return memStats{}, memStats{}, fmt.Errorf("the manager did not report its memory")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.baseline, p.latest, nil
}

// ring asks a ring member for what it owns, with its heap (one SIGUSR1: the ring line comes first).
func (p *managerProcess) ring() (ringReport, memStats, error) {
	_, now, err := p.memory()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latestRing, now, err
}

// kill ends the process at once (SIGKILL), as a crashed node or an OOM kill does, and waits for its end.
func (p *managerProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop ends the manager as Kubernetes does: SIGTERM, then SIGKILL after a grace period.
func (p *managerProcess) stop() error {
	if done, err := p.exited(); done {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the manager did not stop within 40 s of SIGTERM; killed")
	}
}

// exited reports whether the process ended, with its error.
func (p *managerProcess) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// procCPU returns the user+system CPU time of a process, from /proc/<pid>/stat (clock ticks of 1/100 s).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: split after its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	const clockTick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * clockTick, nil
}

// procMemKiB returns a field of /proc/<pid>/status in KiB, e.g. VmHWM (peak RSS) or VmRSS.
func procMemKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v := strings.Fields(rest)
			if len(v) > 0 {
				return strconv.ParseInt(v[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// controlPlanePIDs finds the etcd and kube-apiserver processes this process started.
func controlPlanePIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, closeAt := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closeAt < open {
			continue
		}
		comm := s[open+1 : closeAt]
		fields := strings.Fields(s[closeAt+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		if ppid == self && (comm == "etcd" || comm == "kube-apiserver") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// machineBusy returns the CPU time every process of the machine has used since boot (/proc/stat's first line:
// all but idle and iowait, in clock ticks of 1/100 s), so that a window can tell what other processes took.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat")
	}
	var busy int64
	for k, f := range fields[1:] {
		ticks, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc/stat")
		}
		// user nice system idle iowait irq softirq steal guest guest_nice; guest time is counted in user already.
		if k == 3 || k == 4 || k >= 8 {
			continue
		}
		busy += ticks
	}
	const clockTick = 10 * time.Millisecond // USER_HZ
	return time.Duration(busy) * clockTick, nil
}

// cpuOf sums the CPU time of processes.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if d, err := procCPU(pid); err == nil {
			total += d
		}
	}
	return total
}
