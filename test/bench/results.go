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
	cfg     config
	manager managerBinary
	setup   time.Duration

	warmUp       time.Duration
	warmStartup  startup
	steady       window
	steadyWrites int64
	heapBaseline uint64
	heapLive     uint64
	// steadyBins are the vendor requests in each second of the steady window, per vendor: how much a steady
	// state's seconds spread, to read the restart's against.
	steadyBins [numVendors][]int32
	// The restarted manager's, at the end of the restart phase.
	restartHeapBaseline, restartHeapLive uint64
	peakRSSKiB                           int64
	// The single manager's VmRSS and VmHWM at the end of its steady window, and the bench's own CPU time in
	// that window: the ring's replicas are held against them.
	steadyRSSKiB, steadyHWMKiB int64
	steadyBenchCPU             time.Duration
	// steadyMachineBusy is the CPU time every process of the machine used in the single steady window.
	steadyMachineBusy time.Duration
	// processes counts the manager processes started.
	processes int

	restartRan         bool
	stopTook           time.Duration
	restartStartup     startup
	restartCatchUpRate float64
	// restartBins are the requests per vendor in each whole second from the new process's start.
	restartBins       [numVendors][]int32
	restartMaxRate    [numVendors]int32 // largest sliding second, per vendor
	restartMaxRateAll int32             // largest sliding second, all vendors
	restartWrites     int64
	// restartExtraWrites are the restart phase's writes beyond the observations not yet written before it.
	restartExtraWrites int64

	finishRunning window
	stillRunning  []int
	finishers     []int
	latencies     []time.Duration

	slowOthers, slowSlow, slowReference window

	totalWrites, totalDistinct int
	maxExcess, tasksOverTarget int
	logins                     [numVendors]int64
	watchGaps                  int

	finishedRequests         int64
	finishedRequestsByVendor [numVendors]int64
	finishedWrites           int64
	finishedListed           int

	profileDir      string
	profileProblems []string

	ring ringResults
}

func verdict(met bool, missed string) string {
	if met {
		return "met"
	}
	return "**missed** " + missed
}

// row is one line of the results table, with the numbers it shows (for -json and -compare).
type row struct {
	// Key names the row across runs and versions of the bench.
	Key     string  `json:"key"`
	Measure string  `json:"measure"`
	Result  string  `json:"result"`
	Target  string  `json:"target"`
	Verdict string  `json:"verdict"`
	Values  []value `json:"values,omitempty"`
}

// value is one number of a row.
type value struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

func val(name string, v float64, unit string) value { return value{Name: name, Value: v, Unit: unit} }

func secs(d time.Duration) float64 { return d.Seconds() }

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// requestRate is the vendor's HTTP requests per second in the window (all tasks: polls, ZStack's
// second request, logins, checks).
func (w window) requestRate(v int) float64 {
	var sum int64
	for k := range numReqKinds {
		sum += w.requests[v][k]
	}
	return ratio(float64(sum), w.dur.Seconds())
}

// idealRequestRate is the request rate of vendor v when each of its tasks is polled exactly once per interval
// (N / interval polls, each with the requests a poll made in w): the "steady rate". A manager that
// falls behind in w (fewer polls per interval) does not lower it.
func (w window) idealRequestRate(v int) float64 {
	return ratio(w.requestRate(v), w.vendorPollsPerTaskInterval(v))
}

func (w window) idealRequestsPerSecond() float64 {
	var sum float64
	for v := range numVendors {
		sum += w.idealRequestRate(v)
	}
	return sum
}

func (w window) requestsPerSecond() float64 {
	var sum float64
	for v := range numVendors {
		sum += w.requestRate(v)
	}
	return sum
}

// restartBinMax returns the largest whole-second bin after the restart, all vendors, and its second.
func (r results) restartBinMax() (int32, int) {
	all := allVendors(r.restartBins)
	if len(all) == 0 {
		return 0, 0
	}
	at := slices.Index(all, slices.Max(all))
	return all[at], at
}

// allVendors sums per-vendor bins second by second.
func allVendors(bins [numVendors][]int32) []int32 {
	sums := make([]int32, len(bins[0]))
	for v := range numVendors {
		for s, n := range bins[v] {
			sums[s] += n
		}
	}
	return sums
}

func maxBin(bins []int32) int32 {
	var m int32
	for _, b := range bins {
		m = max(m, b)
	}
	return m
}

// objects is every AsyncTask the manager holds: the running ones and the finished ones.
func (r results) objects() int { return r.cfg.tasks + r.cfg.finished }

// rows are the table's rows, for the phases that ran.
func (r results) rows() []row {
	c := r.cfg
	iv := c.interval
	var rows []row
	add := func(x row) { rows = append(rows, x) }

	if c.has(phaseSteady) {
		ppi := r.steady.pollsPerTaskInterval()
		add(row{Key: "steady.polls_per_task_interval",
			Measure: fmt.Sprintf("Vendor polls per task per poll interval, steady (all %d running)", c.tasks),
			Result:  fmt.Sprintf("%.3f (HTTP requests incl. ZStack's second call, logins, checks: %.3f)", ppi, r.steady.requestsPerTaskInterval()),
			Target:  "1.0 ± 5%", Verdict: verdict(ppi >= 0.95 && ppi <= 1.05, fmt.Sprintf("by %.1f%%", 100*(abs(ppi-1)-0.05))),
			Values: []value{val("polls per task per interval", ppi, ""), val("HTTP requests per task per interval", r.steady.requestsPerTaskInterval(), "")}})
	}
	wpt, dpt := ratio(float64(r.totalWrites), float64(c.tasks)), ratio(float64(r.totalDistinct), float64(c.tasks))
	add(row{Key: "writes_per_task", Measure: "Status writes per running task (whole run) vs distinct observations produced",
		Result: fmt.Sprintf("%.3f vs %.3f; %d tasks over distinct+1, most excess %+d", wpt, dpt, r.tasksOverTarget, r.maxExcess),
		Target: "≤ distinct + 1", Verdict: verdict(r.tasksOverTarget == 0, fmt.Sprintf("on %d tasks", r.tasksOverTarget)),
		Values: []value{val("writes per task", wpt, ""), val("tasks over distinct+1", float64(r.tasksOverTarget), "")}})
	if c.has(phaseFinish) {
		p50, p99, pmax := percentiles(r.latencies)
		detected := len(r.latencies)
		latTarget := iv + time.Second
		add(row{Key: "finish.detection_latency",
			Measure: fmt.Sprintf("Detection latency, vendor finished → Ready=True seen (%d/%d detected, %d running)", detected, len(r.finishers), c.tasks),
			Result:  fmt.Sprintf("p50 %s, p99 %s, max %s", round(p50), round(p99), round(pmax)),
			Target:  fmt.Sprintf("p99 ≤ %s", latTarget),
			Verdict: verdict(p99 <= latTarget && detected == len(r.finishers), fmt.Sprintf("by %s", round(p99-latTarget))),
			Values:  []value{val("p50", secs(p50), "s"), val("p99", secs(p99), "s")}})
	}
	if c.has(phaseSteady) {
		catchUp := ""
		if r.restartRan {
			catchUp = fmt.Sprintf(" (catch-up after restart: %.1f/s)", r.restartCatchUpRate)
		}
		add(row{Key: "steady.polls_per_second", Measure: "Polls per second sustained (steady)",
			Result: fmt.Sprintf("%.1f/s%s", r.steady.pollsPerSecond(), catchUp),
			Target: fmt.Sprintf("ideal %d/s (N / interval)", int(float64(c.tasks)/iv.Seconds())), Verdict: "—",
			Values: []value{val("polls per second", r.steady.pollsPerSecond(), "/s")}})
		cpu := r.steady.cpuPer1000()
		cpuVerdict := fmt.Sprintf("n/a at %d running", c.tasks)
		if c.tasks >= 10000 {
			cpuVerdict = verdict(cpu <= 0.18, fmt.Sprintf("by %.3f s", cpu-0.18))
		}
		profiled := ""
		if r.profileDir != "" {
			profiled = "; CPU profile taken during the window"
		}
		add(row{Key: "steady.cpu_per_1000_polls", Measure: "Manager CPU seconds per 1,000 polls, steady",
			Result: fmt.Sprintf("%.3f s (control plane: %.3f s%s)", cpu, r.steady.controlPlaneCPUPer1000(), profiled),
			Target: "≤ 0.18 s at ≥ 10,000 running", Verdict: cpuVerdict,
			Values: []value{val("manager", cpu, "s"), val("control plane", r.steady.controlPlaneCPUPer1000(), "s")}})
	}
	rssMiB := float64(r.peakRSSKiB) / 1024
	rssTarget, rssV := "< 150 MiB at 10,000 tasks", rssVerdict(rssMiB, r.objects())
	if r.objects() >= 100000 {
		rssTarget, rssV = "< 250 MiB at 100,000 objects", verdict(rssMiB < 250, fmt.Sprintf("by %.1f MiB", rssMiB-250))
	}
	add(row{Key: "peak_rss_mib", Measure: fmt.Sprintf("Manager peak RSS (VmHWM), %d AsyncTasks held (%d running, %d finished)", r.objects(), c.tasks, c.finished),
		Result: fmt.Sprintf("%.1f MiB", rssMiB), Target: rssTarget, Verdict: rssV, Values: []value{val("peak RSS", rssMiB, "MiB")}})
	if c.has(phaseSteady) {
		perTask := ratio(float64(int64(r.heapLive)-int64(r.heapBaseline)), float64(r.objects()))
		heapVerdict := fmt.Sprintf("n/a at %d objects", r.objects())
		if r.objects() >= 10000 {
			heapVerdict = verdict(perTask/1024 <= 1.5, fmt.Sprintf("by %.2f KiB", perTask/1024-1.5))
		}
		add(row{Key: "steady.heap_per_task_kib",
			Measure: fmt.Sprintf("Live heap per tracked task, running or finished, end of the steady window (after GC, less the empty manager's %.1f MiB; "+
				"includes the Events of the warm-up's phase changes, which the event broadcaster keeps about six minutes)", float64(r.heapBaseline)/(1<<20)),
			Result: fmt.Sprintf("%.2f KiB (live heap %.1f MiB, %d objects)", perTask/1024, float64(r.heapLive)/(1<<20), r.objects()),
			Target: "≤ 1.5 KiB at ≥ 10,000 objects", Verdict: heapVerdict,
			Values: []value{val("heap per task", perTask/1024, "KiB"), val("live heap", float64(r.heapLive)/(1<<20), "MiB")}})
	}
	if c.has(phaseRestart) && r.restartHeapLive > 0 {
		perTask := ratio(float64(int64(r.restartHeapLive)-int64(r.restartHeapBaseline)), float64(r.objects()))
		heapVerdict := fmt.Sprintf("n/a at %d objects", r.objects())
		if r.objects() >= 10000 {
			heapVerdict = verdict(perTask/1024 <= 1.5, fmt.Sprintf("by %.2f KiB", perTask/1024-1.5))
		}
		add(row{Key: "restart.heap_per_task_kib",
			Measure: "Live heap per tracked task in the restarted manager, at the end of the restart phase (no task changed phase in it: no Events kept)",
			Result:  fmt.Sprintf("%.2f KiB (live heap %.1f MiB, %d objects)", perTask/1024, float64(r.restartHeapLive)/(1<<20), r.objects()),
			Target:  "≤ 1.5 KiB at ≥ 10,000 objects", Verdict: heapVerdict,
			Values: []value{val("heap per task", perTask/1024, "KiB"), val("live heap", float64(r.restartHeapLive)/(1<<20), "MiB")}})
	}
	if c.finished > 0 {
		add(row{Key: "finished.vendor_requests", Measure: fmt.Sprintf("Vendor requests for the %d finished tasks (whole run)", c.finished),
			Result: fmt.Sprint(r.finishedRequests), Target: "0",
			Verdict: verdict(r.finishedRequests == 0, fmt.Sprintf("by %d (%s)", r.finishedRequests, counts(r.finishedRequestsByVendor))),
			Values:  []value{val("requests", float64(r.finishedRequests), "")}})
		add(row{Key: "finished.status_writes", Measure: fmt.Sprintf("Status writes to the %d finished tasks (whole run)", c.finished),
			Result: fmt.Sprint(r.finishedWrites), Target: "0", Verdict: verdict(r.finishedWrites == 0, fmt.Sprintf("by %d", r.finishedWrites)),
			Values: []value{val("writes", float64(r.finishedWrites), "")}})
	}
	add(r.startupRow("warmup", "Warm-up (every task due)", r.warmStartup))
	if r.restartRan {
		rows = append(rows, r.restartRows()...)
	}
	if c.has(phaseSlow) {
		add(r.slowRow())
	}
	if r.ring.ran {
		rows = append(rows, r.ringRows()...)
	}
	return rows
}

// startupRow is "cache sync + first poll of every running task" of a manager process that just started.
func (r results) startupRow(key, phase string, s startup) row {
	c := r.cfg
	target := c.interval + s.forced
	x := row{Key: key + ".cache_sync_first_poll",
		Measure: fmt.Sprintf("%s: cache sync, then the first poll of every running task (%d AsyncTasks held, %d running)", phase, r.objects(), c.tasks),
		Target:  fmt.Sprintf("every task polled ≤ %s after the sync (interval + %s forced by rateLimit)", round(target), round(s.forced))}
	polled := fmt.Sprintf("%d/%d polled", s.polled, c.tasks)
	if !s.syncSeen {
		x.Result = fmt.Sprintf("cache sync not found: no \"Starting workers\" line of controller asynctask in the manager's log; "+
			"every task polled %s after the process started (%s)", round(s.lastPoll), polled)
		x.Verdict = "n/a (no cache sync in the log)"
		x.Values = []value{val("all polled after the start", secs(s.lastPoll), "s")}
		return x
	}
	x.Result = fmt.Sprintf("cache synced %s after the process started; every task polled %s after the sync, %s after the start (%s)",
		round(s.synced), round(s.fromSync()), round(s.lastPoll), polled)
	x.Verdict = verdict(s.allPolled && s.fromSync() <= target, fmt.Sprintf("by %s", round(s.fromSync()-target)))
	x.Values = []value{val("cache sync", secs(s.synced), "s"), val("all polled after the sync", secs(s.fromSync()), "s"),
		val("all polled after the start", secs(s.lastPoll), "s")}
	return x
}

// restartRows are the restart phase's: startup, re-poll time, request rate against the steady one, writes.
func (r results) restartRows() []row {
	c := r.cfg
	iv := c.interval
	st := r.restartStartup
	var rows []row
	rows = append(rows, r.startupRow("restart", "Restart", st))
	repollTarget := time.Duration(1.1 * float64(iv))
	polled := fmt.Sprintf("%d/%d polled; first poll %s after the start", st.polled, c.tasks, round(st.firstPoll))
	rows = append(rows, row{Key: "restart.repoll_from_start",
		Measure: "Restart: time until every running task was polled again, from the new process's start",
		Result:  fmt.Sprintf("%s (%s)", round(st.lastPoll), polled), Target: fmt.Sprintf("≤ %s (1.1 × interval)", round(repollTarget)),
		Verdict: verdict(st.allPolled && st.lastPoll <= repollTarget, fmt.Sprintf("by %s", round(st.lastPoll-repollTarget))),
		Values:  []value{val("all polled after the start", secs(st.lastPoll), "s")}})
	fromSync := row{Key: "restart.repoll_from_sync",
		Measure: "Restart: time until every running task was polled again, from the new process's cache sync",
		Target:  fmt.Sprintf("≤ %s (1.1 × interval)", round(repollTarget))}
	if st.syncSeen {
		fromSync.Result = fmt.Sprintf("%s (cache synced %s after the start)", round(st.fromSync()), round(st.synced))
		fromSync.Verdict = verdict(st.allPolled && st.fromSync() <= repollTarget, fmt.Sprintf("by %s", round(st.fromSync()-repollTarget)))
		fromSync.Values = []value{val("all polled after the sync", secs(st.fromSync()), "s")}
	} else {
		fromSync.Result = "cache sync not found: no \"Starting workers\" line of controller asynctask in the manager's log"
		fromSync.Verdict = "n/a"
	}
	rows = append(rows, fromSync)

	// Request rate per second against the steady rate (N / interval polls, with the requests per poll of the
	// steady window), all backends and per backend.
	steadyAll := r.steady.idealRequestsPerSecond()
	limitAll := 1.1 * steadyAll
	binAll, at := r.restartBinMax()
	over, seconds := 0, len(r.restartBins[0])
	for _, sum := range allVendors(r.restartBins) {
		if float64(sum) > limitAll {
			over++
		}
	}
	rows = append(rows, row{Key: "restart.rate_all",
		Measure: fmt.Sprintf("Restart: vendor requests per second after the new process started, all backends (%d whole seconds)", seconds),
		Result: fmt.Sprintf("largest 1-s bin %d (second %d), largest sliding second %d; steady %.1f req/s (N / interval = %.0f polls/s "+
			"× the steady window's requests per poll; the window itself made %.1f req/s, its largest second ×%.2f of that); "+
			"bin / steady %.2f; %d seconds over 1.1 × steady",
			binAll, at, r.restartMaxRateAll, steadyAll, float64(c.tasks)/iv.Seconds(), r.steady.requestsPerSecond(),
			ratio(float64(maxBin(allVendors(r.steadyBins))), r.steady.requestsPerSecond()), ratio(float64(binAll), steadyAll), over),
		Target:  fmt.Sprintf("every second ≤ 1.1 × steady = %.0f req/s", limitAll),
		Verdict: verdict(over == 0, fmt.Sprintf("by %.0f req/s (×%.2f of steady)", float64(binAll)-limitAll, ratio(float64(binAll), steadyAll))),
		Values: []value{val("largest 1-s bin", float64(binAll), "req/s"), val("largest sliding second", float64(r.restartMaxRateAll), "req/s"),
			val("largest bin / steady", ratio(float64(binAll), steadyAll), "")}})
	var parts []string
	worst, worstV := 0.0, 0
	var values []value
	for v := range numVendors {
		bin, steady := maxBin(r.restartBins[v]), r.steady.idealRequestRate(v)
		q := ratio(float64(bin), steady)
		if q > worst {
			worst, worstV = q, v
		}
		ownMax := ratio(float64(maxBin(r.steadyBins[v])), r.steady.requestRate(v))
		parts = append(parts, fmt.Sprintf("%s %d (sliding %d) vs %.1f (×%.2f; the steady window's own largest second: ×%.2f of its mean)",
			vendorNames[v], bin, r.restartMaxRate[v], steady, q, ownMax))
		values = append(values, val(vendorNames[v]+" largest bin / steady", q, ""))
	}
	rows = append(rows, row{Key: "restart.rate_per_backend",
		Measure: "Restart: largest 1-s bin of vendor requests per backend (largest sliding second) vs its steady rate, req/s",
		Result:  strings.Join(parts, "; "), Target: "every second ≤ 1.1 × steady",
		Verdict: verdict(worst <= 1.1, fmt.Sprintf("by ×%.2f (%s)", worst, vendorNames[worstV])), Values: values})
	// The backends' own limit, as before.
	worstSliding := int32(0)
	for _, v := range r.restartMaxRate {
		worstSliding = max(worstSliding, v)
	}
	rateLimit := int32(c.qps + c.burst)
	rows = append(rows, row{Key: "restart.rate_limit",
		Measure: "Restart: largest vendor request rate in any sliding second, per backend, against the rateLimit",
		Result:  rates(r.restartMaxRate) + " req/s", Target: fmt.Sprintf("≤ qps %d (+ burst %d)", c.qps, c.burst),
		Verdict: verdict(worstSliding <= rateLimit, fmt.Sprintf("by %d req/s", worstSliding-rateLimit)),
		Values:  []value{val("largest sliding second, worst backend", float64(worstSliding), "req/s")}})
	// A write after the restart is extra unless it records an observation the old manager had not written yet
	// (a progress change close to the end of the steady window, say).
	rows = append(rows, row{Key: "restart.status_writes", Measure: "Restart: status writes in the restart phase",
		Result: fmt.Sprintf("%d, of which %d extra (not a new observation)", r.restartWrites, r.restartExtraWrites),
		Target: "0 extra", Verdict: verdict(r.restartExtraWrites == 0, fmt.Sprintf("by %d", r.restartExtraWrites)),
		Values: []value{val("writes", float64(r.restartWrites), ""), val("extra writes", float64(r.restartExtraWrites), "")}})
	return rows
}

func (r results) slowRow() row {
	c := r.cfg
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
	return row{Key: "slow.others_interval",
		Measure: fmt.Sprintf("Slow backend (API Gateway, %s per request): poll interval achieved for the others", c.slowDelay),
		Result: fmt.Sprintf("%s vs %s before (%+.0f%%); %d of %d not polled at all; the slow backend's own: %s", gotText,
			ref.Round(10*time.Millisecond), 100*delay, r.slowOthers.unpolled(), len(r.slowOthers.tasks),
			r.slowSlow.achievedInterval().Round(10*time.Millisecond)),
		Target: "≤ +10%", Verdict: verdict(delay <= 0.10, fmt.Sprintf("by %.0f points", 100*(delay-0.10))),
		Values: []value{val("achieved interval, others", secs(got), "s"), val("change", delay, "")}}
}

// markdown renders the results table and the details.
func (r results) markdown() string {
	var b strings.Builder
	c := r.cfg
	finished := ""
	if c.finished > 0 {
		finished = fmt.Sprintf(" + %d finished", c.finished)
	}
	fmt.Fprintf(&b, "### N = %d running tasks%s, poll interval %s, MaxConcurrentReconciles %s, manager %s\n\n", c.tasks, finished,
		c.interval, concurrencyText(c.concurrency), r.manager.Label)
	fmt.Fprintf(&b, "Run %s on %s, %d CPUs, %s; rateLimit qps %d burst %d per backend; measured windows of %s; phases %s%s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), cpuModel(), runtime.NumCPU(), runtime.Version(), c.qps, c.burst, c.window,
		strings.Join(c.phases, ","), r.ringPhasesText())
	memLimit := "none"
	if c.goMemLimit != "" {
		memLimit = c.goMemLimit + " (the Deployment's limits.memory 256Mi less a tenth)"
	}
	fmt.Fprintf(&b, "Manager binary: %s; its GOMEMLIMIT: %s.\n\n", r.manager, memLimit)
	b.WriteString("| Measure | Result | Target | Verdict |\n|---|---|---|---|\n")
	for _, x := range r.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", x.Measure, x.Result, x.Target, x.Verdict)
	}

	b.WriteString("\nDetails:\n\n")
	fmt.Fprintf(&b, "- Setup (not measured): %s to create the objects (%d running, %d finished); warm-up (manager start → every task Running, all due at once): %s.\n",
		r.setup.Round(time.Second), c.tasks, c.finished, r.warmUp.Round(100*time.Millisecond))
	if c.has(phaseSteady) {
		b.WriteString("- Steady polls per task per interval by vendor (HTTP requests in brackets):")
		for v := range numVendors {
			fmt.Fprintf(&b, " %s %.3f (%.3f);", vendorNames[v], r.steady.vendorPollsPerTaskInterval(v), r.steady.vendorRequestsPerTaskInterval(v))
		}
		fmt.Fprintf(&b, " achieved interval %s; %d tasks not polled in the window.\n", r.steady.achievedInterval().Round(10*time.Millisecond), r.steady.unpolled())
		fmt.Fprintf(&b, "- Status writes in the steady window: %d (each of the %d non-API-Gateway tasks changed progress once).\n", r.steadyWrites, c.tasks-tasksOfVendor(c.tasks, vAPIG))
	}
	if c.has(phaseFinish) {
		fmt.Fprintf(&b, "- Finish phase, the %d tasks that kept running: %.3f polls per task per interval.\n", len(r.finishRunning.tasks), r.finishRunning.pollsPerTaskInterval())
	}
	if r.restartRan {
		fmt.Fprintf(&b, "- Restart, vendor requests in each second after the new process started, all backends (steady: %.0f/s): %s.\n",
			r.steady.requestsPerSecond(), binsText(r.restartBins))
		fmt.Fprintf(&b, "- Stopping the first manager (SIGTERM → exit) took %s.\n", r.stopTook.Round(100*time.Millisecond))
	}
	if c.finished > 0 {
		fmt.Fprintf(&b, "- Finished tasks: the bench's watch listed %d of %d before the manager started; vendor requests for them by backend: %s.\n",
			r.finishedListed, c.finished, counts(r.finishedRequestsByVendor))
	}
	if r.ring.ran {
		r.ringDetails(&b)
	}
	fmt.Fprintf(&b, "- Logins per vendor over the run (%d manager processes): %s.\n", r.processes, counts(r.logins))
	if r.profileDir != "" {
		fmt.Fprintf(&b, "- Profiles of the manager (%s): CPU over the steady window and heap at its end, with `go tool pprof -top` text, in %s (cpu-%s.*, heap-%s.*).\n",
			r.manager.Label, r.profileDir, r.manager.Label, r.manager.Label)
		for _, p := range r.profileProblems {
			fmt.Fprintf(&b, "  - could not: %s\n", p)
		}
	}
	if r.watchGaps > 0 {
		fmt.Fprintf(&b, "- The watch had to relist %d times: some writes may be uncounted.\n", r.watchGaps)
	}
	return b.String()
}

// binsText lists the requests of every whole second, all vendors together (at most 180 seconds).
func binsText(bins [numVendors][]int32) string {
	var parts []string
	for s := range bins[0] {
		if s == 180 {
			parts = append(parts, "…")
			break
		}
		var sum int32
		for v := range numVendors {
			sum += bins[v][s]
		}
		parts = append(parts, fmt.Sprint(sum))
	}
	return strings.Join(parts, " ")
}

func counts(c [numVendors]int64) string {
	parts := make([]string, numVendors)
	for v := range numVendors {
		parts[v] = fmt.Sprintf("%s %d", vendorNames[v], c[v])
	}
	return strings.Join(parts, ", ")
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
