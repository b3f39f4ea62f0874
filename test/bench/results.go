package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// window is what was counted during one measured phase, for a set of tasks.
type window struct {
	dur      time.Duration
	interval time.Duration
	tasks    []int
	// pollDelta is every task's polls in the window (all tasks, indexed by task).
	pollDelta []int32
	// requests counts every vendor request in the window, by vendor and kind (all tasks, checks and logins).
	requests [numVendors][numReqKinds]int64
	cpu      usage
}

func measureWindow(s0, s1 countSnapshot, u0, u1 usage, tasks []int, interval time.Duration) window {
	w := window{dur: s1.at - s0.at, interval: interval, tasks: tasks, pollDelta: make([]int32, len(s1.polls)),
		cpu: usage{manager: u1.manager - u0.manager, controlPlane: u1.controlPlane - u0.controlPlane}}
	for i := range s1.polls {
		w.pollDelta[i] = s1.polls[i] - s0.polls[i]
	}
	for v := range numVendors {
		for k := range numReqKinds {
			w.requests[v][k] = s1.byKind[v][k] - s0.byKind[v][k]
		}
	}
	return w
}

// measureWindowTasks is w restricted to tasks.
func measureWindowTasks(w window, tasks []int) window {
	w.tasks = tasks
	return w
}

func (w window) polls() (total int64, byVendor, tasksByVendor [numVendors]int64) {
	for _, i := range w.tasks {
		total += int64(w.pollDelta[i])
		byVendor[i%numVendors] += int64(w.pollDelta[i])
		tasksByVendor[i%numVendors]++
	}
	return total, byVendor, tasksByVendor
}

func (w window) intervals() float64 { return w.dur.Seconds() / w.interval.Seconds() }

func (w window) pollsPerTaskInterval() float64 {
	total, _, _ := w.polls()
	return ratio(float64(total), float64(len(w.tasks))*w.intervals())
}

func (w window) vendorPollsPerTaskInterval(v int) float64 {
	_, byVendor, tasks := w.polls()
	return ratio(float64(byVendor[v]), float64(tasks[v])*w.intervals())
}

// vendorRequestsPerTaskInterval counts every HTTP request to the vendor, a second request per poll, logins and
// checks included; meaningful for windows over all tasks.
func (w window) vendorRequestsPerTaskInterval(v int) float64 {
	_, _, tasks := w.polls()
	var sum int64
	for k := range numReqKinds {
		sum += w.requests[v][k]
	}
	return ratio(float64(sum), float64(tasks[v])*w.intervals())
}

func (w window) requestsPerTaskInterval() float64 {
	var sum int64
	for v := range numVendors {
		for k := range numReqKinds {
			sum += w.requests[v][k]
		}
	}
	return ratio(float64(sum), float64(len(w.tasks))*w.intervals())
}

func (w window) pollsPerSecond() float64 {
	total, _, _ := w.polls()
	return ratio(float64(total), w.dur.Seconds())
}

// cpuPer1000 is the manager's CPU seconds per 1,000 polls (of every task polled in the window).
func (w window) cpuPer1000() float64 {
	return ratio(w.cpu.manager.Seconds()*1000, float64(w.allPolls()))
}

func (w window) controlPlaneCPUPer1000() float64 {
	return ratio(w.cpu.controlPlane.Seconds()*1000, float64(w.allPolls()))
}

func (w window) allPolls() int64 {
	var sum int64
	for _, p := range w.pollDelta {
		sum += int64(p)
	}
	return sum
}

// achievedInterval is the mean time between two polls of a task.
func (w window) achievedInterval() time.Duration {
	total, _, _ := w.polls()
	if total == 0 {
		return 0
	}
	return time.Duration(float64(w.dur) * float64(len(w.tasks)) / float64(total))
}

// unpolled counts the tasks not polled at all in the window.
func (w window) unpolled() int {
	n := 0
	for _, i := range w.tasks {
		if w.pollDelta[i] == 0 {
			n++
		}
	}
	return n
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func percentiles(d []time.Duration) (p50, p99, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		// Nearest rank.
		k := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(k, 0), len(s)-1)]
	}
	return at(0.50), at(0.99), s[len(s)-1]
}

// results are a run's numbers.
type results struct {
	cfg   config
	setup time.Duration

	warmUp       time.Duration
	steady       window
	steadyWrites int64
	heapBaseline uint64
	heapLive     uint64
	peakRSSKiB   int64

	stopTook           time.Duration
	restartForced      time.Duration
	restartFirstPoll   time.Duration
	restartRepoll      time.Duration
	restartPolled      int
	restartAllPolled   bool
	restartCatchUpRate float64
	restartMaxRate     [numVendors]int32
	restartWrites      int64

	finishRunning window
	stillRunning  []int
	finishers     []int
	latencies     []time.Duration

	slowOthers, slowSlow, slowReference window

	totalWrites, totalDistinct int
	maxExcess, tasksOverTarget int
	logins                     [numVendors]int64
	watchGaps                  int
}

func verdict(met bool, missed string) string {
	if met {
		return "met"
	}
	return "**missed** " + missed
}

// markdown renders the results table and the details.
func (r results) markdown() string {
	var b strings.Builder
	c := r.cfg
	iv := c.interval
	fmt.Fprintf(&b, "### N = %d tasks, poll interval %s, MaxConcurrentReconciles %s\n\n", c.tasks, iv, concurrencyText(c.concurrency))
	fmt.Fprintf(&b, "Run %s on %s, %d CPUs, %s; rateLimit qps %d burst %d per backend; measured windows of %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), runtime.Version(), c.qps, c.burst, c.window)
	b.WriteString("| Measure | Result | Target | Verdict |\n|---|---|---|---|\n")

	// Requests per task per interval.
	ppi := r.steady.pollsPerTaskInterval()
	fmt.Fprintf(&b, "| Vendor polls per task per poll interval, steady (all %d running) | %.3f (HTTP requests incl. ZStack's second call, logins, checks: %.3f) | 1.0 ± 10%% | %s |\n",
		c.tasks, ppi, r.steady.requestsPerTaskInterval(), verdict(ppi >= 0.9 && ppi <= 1.1, fmt.Sprintf("by %.1f%%", 100*(abs(ppi-1)-0.1))))
	// Writes.
	wpt, dpt := ratio(float64(r.totalWrites), float64(c.tasks)), ratio(float64(r.totalDistinct), float64(c.tasks))
	fmt.Fprintf(&b, "| Status writes per task (whole run) vs distinct observations produced | %.3f vs %.3f; %d tasks over distinct+1, most excess %+d | ≤ distinct + 1 | %s |\n",
		wpt, dpt, r.tasksOverTarget, r.maxExcess, verdict(r.tasksOverTarget == 0, fmt.Sprintf("on %d tasks", r.tasksOverTarget)))
	// Latency.
	p50, p99, pmax := percentiles(r.latencies)
	detected := len(r.latencies)
	latTarget := iv + time.Second
	fmt.Fprintf(&b, "| Detection latency, vendor finished → Ready=True seen (%d/%d detected) | p50 %s, p99 %s, max %s | p99 ≤ %s | %s |\n",
		detected, len(r.finishers), p50.Round(10*time.Millisecond), p99.Round(10*time.Millisecond), pmax.Round(10*time.Millisecond), latTarget,
		verdict(p99 <= latTarget && detected == len(r.finishers), fmt.Sprintf("by %s", (p99-latTarget).Round(10*time.Millisecond))))
	// Throughput and CPU.
	fmt.Fprintf(&b, "| Polls per second sustained (steady) | %.1f/s (catch-up after restart: %.1f/s) | ideal %d/s (N / interval) | %s |\n",
		r.steady.pollsPerSecond(), r.restartCatchUpRate, int(float64(c.tasks)/iv.Seconds()),
		"—")
	fmt.Fprintf(&b, "| Manager CPU seconds per 1,000 polls | %.3f s (control plane: %.3f s) | — | — |\n",
		r.steady.cpuPer1000(), r.steady.controlPlaneCPUPer1000())
	// Memory.
	rssMiB := float64(r.peakRSSKiB) / 1024
	perTask := ratio(float64(int64(r.heapLive)-int64(r.heapBaseline)), float64(c.tasks))
	fmt.Fprintf(&b, "| Manager peak RSS (VmHWM) | %.1f MiB | < 150 MiB at 10,000 tasks | %s |\n", rssMiB,
		rssVerdict(rssMiB, c.tasks))
	fmt.Fprintf(&b, "| Live heap per tracked task (after GC, less the empty manager's %.1f MiB) | %.1f KiB (live heap %.1f MiB) | — | — |\n",
		float64(r.heapBaseline)/(1<<20), perTask/1024, float64(r.heapLive)/(1<<20))
	// Restart.
	worst := int32(0)
	for _, v := range r.restartMaxRate {
		worst = max(worst, v)
	}
	rateLimit := int32(c.qps + c.burst)
	fmt.Fprintf(&b, "| Restart: largest vendor request rate in any second, per backend | %s req/s | ≤ qps %d (+ burst %d) | %s |\n",
		rates(r.restartMaxRate), c.qps, c.burst, verdict(worst <= rateLimit, fmt.Sprintf("by %d req/s", worst-rateLimit)))
	repollTarget := iv + r.restartForced
	fmt.Fprintf(&b, "| Restart: time until every task is polled again (%d/%d polled; first poll after %s) | %s | ≤ %s (interval + %s forced by rateLimit) | %s |\n",
		r.restartPolled, c.tasks, r.restartFirstPoll.Round(100*time.Millisecond), r.restartRepoll.Round(100*time.Millisecond), repollTarget.Round(100*time.Millisecond),
		r.restartForced.Round(100*time.Millisecond), verdict(r.restartAllPolled && r.restartRepoll <= repollTarget,
			fmt.Sprintf("by %s", (r.restartRepoll-repollTarget).Round(100*time.Millisecond))))
	// A write after the restart is fine when it records an observation the old manager had not written yet; it
	// is spurious when it makes a task's writes exceed its distinct observations.
	fmt.Fprintf(&b, "| Restart: status writes in the restart phase | %d (spurious: %s) | 0 spurious | %s |\n", r.restartWrites,
		map[bool]string{true: "none, every write is a new observation", false: "some task has more writes than observations"}[r.maxExcess <= 0],
		verdict(r.maxExcess <= 0, ""))
	// Slow backend.
	ref, got := r.slowReference.achievedInterval(), r.slowOthers.achievedInterval()
	delay := ratio(got.Seconds(), ref.Seconds()) - 1
	gotText := got.Round(10 * time.Millisecond).String()
	if total, _, _ := r.slowOthers.polls(); total < int64(len(r.slowOthers.tasks)) {
		gotText = fmt.Sprintf("%d polls of %d tasks in %s (mean interval %s)", total, len(r.slowOthers.tasks),
			r.slowOthers.dur.Round(time.Second), got.Round(time.Second))
	}
	if got == 0 {
		gotText = fmt.Sprintf("> %s (no poll)", r.slowOthers.dur.Round(time.Second))
		delay = ratio(r.slowOthers.dur.Seconds(), ref.Seconds()) - 1
	}
	fmt.Fprintf(&b, "| Slow backend (API Gateway, %s per request): poll interval achieved for the others | %s vs %s before (%+.0f%%); %d of %d not polled at all; the slow backend's own: %s | ≤ +10%% | %s |\n",
		c.slowDelay, gotText, ref.Round(10*time.Millisecond), 100*delay, r.slowOthers.unpolled(), len(r.slowOthers.tasks),
		r.slowSlow.achievedInterval().Round(10*time.Millisecond), verdict(delay <= 0.10, fmt.Sprintf("by %.0f points", 100*(delay-0.10))))

	b.WriteString("\nDetails:\n\n")
	fmt.Fprintf(&b, "- Setup (not measured): %s to create the objects; warm-up (manager start → every task Running, all due at once): %s.\n",
		r.setup.Round(time.Second), r.warmUp.Round(100*time.Millisecond))
	b.WriteString("- Steady polls per task per interval by vendor (HTTP requests in brackets):")
	for v := range numVendors {
		fmt.Fprintf(&b, " %s %.3f (%.3f);", vendorNames[v], r.steady.vendorPollsPerTaskInterval(v), r.steady.vendorRequestsPerTaskInterval(v))
	}
	fmt.Fprintf(&b, " achieved interval %s; %d tasks not polled in the window.\n", r.steady.achievedInterval().Round(10*time.Millisecond), r.steady.unpolled())
	fmt.Fprintf(&b, "- Finish phase, the %d tasks that kept running: %.3f polls per task per interval.\n", len(r.finishRunning.tasks), r.finishRunning.pollsPerTaskInterval())
	fmt.Fprintf(&b, "- Status writes in the steady window: %d (each of the %d non-API-Gateway tasks changed progress once).\n", r.steadyWrites, c.tasks-tasksOfVendor(c.tasks, vAPIG))
	fmt.Fprintf(&b, "- Logins per vendor over the run (two manager processes): %s.\n", logins(r.logins))
	fmt.Fprintf(&b, "- Stopping the first manager (SIGTERM → exit) took %s.\n", r.stopTook.Round(100*time.Millisecond))
	if r.watchGaps > 0 {
		fmt.Fprintf(&b, "- The watch had to relist %d times: some writes may be uncounted.\n", r.watchGaps)
	}
	return b.String()
}

func rssVerdict(mib float64, tasks int) string {
	if tasks < 10000 {
		return fmt.Sprintf("n/a at %d tasks", tasks)
	}
	return verdict(mib < 150, fmt.Sprintf("by %.1f MiB", mib-150))
}

func rates(r [numVendors]int32) string {
	parts := make([]string, numVendors)
	for v := range numVendors {
		parts[v] = fmt.Sprintf("%s %d", vendorNames[v], r[v])
	}
	return strings.Join(parts, ", ")
}

func logins(l [numVendors]int64) string {
	parts := make([]string, numVendors)
	for v := range numVendors {
		parts[v] = fmt.Sprintf("%s %d", vendorNames[v], l[v])
	}
	return strings.Join(parts, ", ")
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func cpuModel() string {
	b, err := readFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(b, "\n") {
		if rest, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
		}
	}
	return "unknown CPU"
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}
