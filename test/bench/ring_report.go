package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// ringPhasesText names the ring phases in the table's heading; "" without a ring.
func (r results) ringPhasesText() string {
	if !r.ring.ran {
		return ""
	}
	l := r.cfg.leases
	s := fmt.Sprintf(", then a ring of %d replicas (Leases %s/%s/%s): ring", r.ring.replicas, l.duration, l.renewDeadline, l.retryPeriod)
	if r.ring.kill != nil {
		s += ",kill"
	}
	return s + ",rollout"
}

// ringRows are the ring phases' rows.
func (r results) ringRows() []row {
	c, rr := r.cfg, r.ring
	iv, tol := c.interval, lateTolerance(c.interval)
	n := rr.replicas
	var rows []row
	add := func(x row) { rows = append(rows, x) }

	ppi := rr.steady.pollsPerTaskInterval()
	perReplica := make([]string, len(rr.figures))
	for k, f := range rr.figures {
		perReplica[k] = fmt.Sprintf("%s %.3f", f.identity, ratio(float64(f.polls), float64(f.tasksByRing)*rr.steady.intervals()))
	}
	add(row{Key: "ring.polls_per_task_interval",
		Measure: fmt.Sprintf("Ring of %d replicas, steady: vendor polls per task per poll interval (all %d running)", n, c.tasks),
		Result:  fmt.Sprintf("%.3f (per replica, of the tasks the ring gives it: %s)", ppi, strings.Join(perReplica, ", ")),
		Target:  "1.0 ± 5%", Verdict: verdict(ppi >= 0.95 && ppi <= 1.05, fmt.Sprintf("by %.1f%%", 100*(abs(ppi-1)-0.05))),
		Values: []value{val("polls per task per interval", ppi, "")}})
	add(r.duplicatesRow("ring.duplicate_polls", fmt.Sprintf("Ring of %d replicas, steady", n), rr.steadyDups))
	add(r.lateRow("ring.late_beyond_interval", fmt.Sprintf("Ring of %d replicas, steady: longest a task went unpolled beyond its interval", n),
		rr.steadyLate, fmt.Sprintf("0 s (≤ %s: 5%% of the interval, a poll's own scheduling)", tol), tol))
	add(r.ownedRow())
	add(r.ringCPURow())
	add(r.ringRSSRow())

	if k := rr.kill; k != nil {
		l := c.leases
		bound := l.duration + 2*l.retryPeriod + iv
		x := r.lateRow("kill.dead_late_beyond_interval",
			fmt.Sprintf("Kill -9 of %s: longest one of its %d tasks went unpolled beyond its interval; kill → its tasks polled again", k.victim, k.dead.tasks),
			k.dead, fmt.Sprintf("≤ %s (LeaseDuration %s + 2 × RetryPeriod %s + interval %s)", bound, l.duration, l.retryPeriod, iv), bound)
		x.Result += "; " + k.repollText()
		x.Verdict = verdict(k.dead.beyond(iv) <= bound && k.repolled == k.dead.tasks, fmt.Sprintf("by %s, %d of %d tasks polled again",
			round(k.dead.beyond(iv)-bound), k.repolled, k.dead.tasks))
		x.Values = append(x.Values, val("first polled again after the kill", secs(k.firstRepoll), "s"),
			val("all polled again after the kill", secs(k.allRepoll), "s"))
		add(x)
		add(r.lateRow("kill.others_late_beyond_interval",
			fmt.Sprintf("Kill -9 of %s: longest one of the other replicas' %d tasks went unpolled beyond its interval", k.victim, k.others.tasks),
			k.others, fmt.Sprintf("0 s (≤ %s: 5%% of the interval)", tol), tol))
		add(r.duplicatesRow("kill.duplicate_polls", fmt.Sprintf("Kill -9 of %s, the %s after it", k.victim, k.window), k.dups))
	}
	if ro := rr.rollout; ro != nil {
		what := fmt.Sprintf("Rolling restart of %d replicas, surge 1", n)
		if rr.kill != nil {
			what += " (first the killed one's replacement)"
		}
		add(r.lateRow("rollout.late_beyond_interval",
			fmt.Sprintf("%s: longest a task went unpolled beyond its interval (%s, until 2 intervals after the last stop)", what, round(ro.window)),
			ro.all, fmt.Sprintf("≤ %s (one interval: a task whose moment falls inside a handover waits for its next)", iv), iv+tol))
		add(r.duplicatesRow("rollout.duplicate_polls", what, ro.dups))
	}
	return rows
}

// lateRow reports a lateness against a bound on the longest gap less the interval.
func (r results) lateRow(key, measure string, l lateness, target string, bound time.Duration) row {
	iv, tol := r.cfg.interval, lateTolerance(r.cfg.interval)
	beyond := l.beyond(iv)
	x := row{Key: key, Measure: measure, Target: target,
		Verdict: verdict(beyond <= bound, fmt.Sprintf("by %s", round(beyond-bound))),
		Values:  []value{val("late beyond the interval", secs(beyond), "s"), val("tasks late", float64(l.late), "")}}
	if l.worst < 0 {
		x.Result, x.Verdict = "no task polled", "**missed**"
		return x
	}
	x.Result = fmt.Sprintf("%s (%s); %d of %d tasks late beyond %s", round(beyond), r.gapText(l), l.late, l.tasks, tol)
	return x
}

// gapText names the task with the longest gap, the gap and when it ended.
func (r results) gapText(l lateness) string {
	end := "ended " + r.ring.phaseAt(l.gap.end)
	if l.gap.open {
		end = "still open at the end, " + r.ring.phaseAt(l.gap.end)
	}
	return fmt.Sprintf("longest gap %s, task %s uid %s, %s", round(l.gap.gap), taskName(l.worst), l.uid, end)
}

func (r results) duplicatesRow(key, when string, dups int64) row {
	return row{Key: key,
		Measure: fmt.Sprintf("%s: duplicate polls (two polls of one task less than half an interval apart, counted in front of the simulator)", when),
		Result:  fmt.Sprint(dups), Target: "0", Verdict: verdict(dups == 0, fmt.Sprintf("by %d (see the details)", dups)),
		Values: []value{val("duplicate polls", float64(dups), "")}}
}

// ownedRow is the running tasks each replica owns: as it reports (asynctask_ring_owned_tasks) and as the ring
// the bench computes gives them.
func (r results) ownedRow() row {
	rr := r.ring
	var parts []string
	agree, most, total := true, 0, 0
	for _, f := range rr.figures {
		parts = append(parts, fmt.Sprintf("%s %d", f.identity, f.report.OwnedTasks))
		agree = agree && f.report.OwnedTasks == f.tasksByRing
		most, total = max(most, f.report.OwnedTasks), total+f.report.OwnedTasks
	}
	maxMean := ratio(float64(most), float64(total)/float64(len(rr.figures)))
	check := "the same as the ring the bench computes from the identities"
	if !agree {
		var computed []string
		for _, f := range rr.figures {
			computed = append(computed, fmt.Sprintf("%s %d", f.identity, f.tasksByRing))
		}
		check = "**not** the ring the bench computes from the identities: " + strings.Join(computed, ", ")
	}
	return row{Key: "ring.owned_tasks",
		Measure: fmt.Sprintf("Ring of %d replicas: running tasks each owns (its asynctask_ring_owned_tasks, end of the steady window)", rr.replicas),
		Result:  fmt.Sprintf("%s (sum %d); max/mean %.3f; %s", strings.Join(parts, ", "), total, maxMean, check),
		Target:  "max/mean ≤ 1.2, sum = all running", Verdict: verdict(maxMean <= 1.2 && agree && total == r.cfg.tasks,
			fmt.Sprintf("max/mean %.3f, sum %d, agrees with the ring: %t", maxMean, total, agree)),
		Values: []value{val("max/mean", maxMean, "")}}
}

// ringCPURow holds each replica's CPU time in the ring's steady window against the single replica's in its own
// window of the same length, with the same tasks and the same status writes.
func (r results) ringCPURow() row {
	rr := r.ring
	var parts []string
	var total time.Duration
	values := []value{}
	for _, f := range rr.figures {
		parts = append(parts, fmt.Sprintf("%s %.2f s (%.3f s per 1,000 of its %d polls; ×%.2f of the single's)", f.identity, f.cpu.Seconds(),
			ratio(f.cpu.Seconds()*1000, float64(f.polls)), f.polls, ratio(f.cpu.Seconds(), r.steady.cpu.manager.Seconds())))
		total += f.cpu
		values = append(values, val(f.identity, f.cpu.Seconds(), "s"))
	}
	single := r.steady.cpu.manager
	values = append(values, val("all replicas / single", ratio(total.Seconds(), single.Seconds()), ""))
	return row{Key: "ring.cpu",
		Measure: fmt.Sprintf("Ring of %d replicas, steady: CPU seconds of each replica in its %s window vs the single replica's in its own (same tasks, "+
			"each changing its progress once)", rr.replicas, r.cfg.window),
		Result: fmt.Sprintf("%s; all %d together %.2f s, ×%.2f of the single replica's %.2f s (%.3f s per 1,000 polls)", strings.Join(parts, ", "),
			len(rr.figures), total.Seconds(), ratio(total.Seconds(), single.Seconds()), single.Seconds(), r.steady.cpuPer1000()),
		Target: "— (reported)", Verdict: "—", Values: values}
}

// ringRSSRow holds each replica's memory against the single replica's: each caches every task.
func (r results) ringRSSRow() row {
	rr := r.ring
	var parts []string
	var peak int64
	for _, f := range rr.figures {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB (peak %.1f, live heap %.1f)", f.identity, kib(f.rssKiB), kib(f.hwmKiB), mib(f.heapLive)))
		peak = max(peak, f.hwmKiB)
	}
	return row{Key: "ring.rss",
		Measure: fmt.Sprintf("Ring of %d replicas: VmRSS of each replica at the end of the steady window (VmHWM, live heap after GC) vs the single replica's", rr.replicas),
		Result: fmt.Sprintf("%s; single replica %.1f MiB (peak %.1f, live heap %.1f)", strings.Join(parts, ", "),
			kib(r.steadyRSSKiB), kib(r.steadyHWMKiB), mib(r.heapLive)),
		Target: "each peak < 150 MiB at 10,000 tasks", Verdict: rssVerdict(kib(peak), r.objects()),
		Values: []value{val("largest replica peak RSS", kib(peak), "MiB"), val("single replica peak RSS", kib(r.steadyHWMKiB), "MiB")}}
}

func kib(k int64) float64  { return float64(k) / 1024 }
func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// phaseAt names a moment of the ring phases: "+12.3 s into the kill" and the like.
func (rr ringResults) phaseAt(t time.Duration) string {
	type mark struct {
		name string
		from time.Duration
	}
	marks := []mark{{"the ring's start", 0}, {"the ring's steady window", rr.steadyFrom}}
	if rr.kill != nil {
		marks = append(marks, mark{"the kill", rr.kill.at})
	}
	if rr.rollout != nil {
		marks = append(marks, mark{"the rollout", rr.rollout.from})
	}
	at := marks[0]
	for _, m := range marks {
		if t >= m.from && m.from > 0 {
			at = m
		}
	}
	if at.from == 0 {
		return fmt.Sprintf("%s after the bench started", round(t))
	}
	return fmt.Sprintf("%s into %s", round(t-at.from), at.name)
}

// ringDetails writes the ring phases' details.
func (r results) ringDetails(b *strings.Builder) {
	c, rr := r.cfg, r.ring
	fmt.Fprintf(b, "- Ring start: %d replicas started together after the single manager stopped; every replica's ring had all %d members %s "+
		"after the first one started, and every task had been polled %s after it.\n", rr.replicas, rr.replicas, round(rr.members), round(rr.allPolled))
	var handovers []string
	for _, f := range rr.figures {
		handovers = append(handovers, fmt.Sprintf("%s %d backends, %d gained / %d lost", f.identity, f.report.OwnedBackends, f.report.Gained, f.report.Lost))
	}
	fmt.Fprintf(b, "- Ring steady window: status writes %d (each of the %d non-API-Gateway tasks changed progress once); by the end, per replica "+
		"(its metrics): %s.\n", rr.steadyWrites, c.tasks-tasksOfVendor(c.tasks, vAPIG), strings.Join(handovers, "; "))
	capacity := time.Duration(runtime.NumCPU()) * c.window
	ringBusy := rr.busy.manager + rr.busy.controlPlane + rr.busy.bench
	singleBusy := r.steady.cpu.manager + r.steady.cpu.controlPlane + r.steadyBenchCPU
	fmt.Fprintf(b, "- CPU used in the ring's steady window: replicas %.1f s, control plane %.1f s, the bench (simulator, counter, watch) %.1f s: "+
		"%.1f s of %d CPUs × %s = %.0f%%; the whole machine %.0f%% busy (other processes %.1f s). In the single replica's: manager %.1f s, "+
		"control plane %.1f s, bench %.1f s: %.0f%%; the whole machine %.0f%% busy (other processes %.1f s).\n",
		rr.busy.manager.Seconds(), rr.busy.controlPlane.Seconds(), rr.busy.bench.Seconds(), ringBusy.Seconds(), runtime.NumCPU(), c.window,
		100*ratio(ringBusy.Seconds(), capacity.Seconds()), 100*ratio(rr.busy.machine.Seconds(), capacity.Seconds()),
		max(0, rr.busy.machine-ringBusy).Seconds(), r.steady.cpu.manager.Seconds(), r.steady.cpu.controlPlane.Seconds(),
		r.steadyBenchCPU.Seconds(), 100*ratio(singleBusy.Seconds(), capacity.Seconds()), 100*ratio(r.steadyMachineBusy.Seconds(), capacity.Seconds()),
		max(0, r.steadyMachineBusy-singleBusy).Seconds())
	if ro := rr.rollout; ro != nil {
		var steps []string
		for _, s := range ro.steps {
			if s.old == "" {
				steps = append(steps, fmt.Sprintf("%s (the killed one's replacement) held its Lease %s after its start", s.started, round(s.leaseAfter)))
				continue
			}
			stop := fmt.Sprintf("%s stopped %s after SIGTERM", s.old, round(s.stopTook))
			if s.stopErr != nil {
				stop += fmt.Sprintf(" (%v)", s.stopErr)
			}
			steps = append(steps, fmt.Sprintf("%s held its Lease %s after its start, then %s", s.started, round(s.leaseAfter), stop))
		}
		fmt.Fprintf(b, "- Rollout steps: %s.\n", strings.Join(steps, "; "))
	}
	if len(rr.duplicates) > 0 {
		shown := rr.duplicates[:min(len(rr.duplicates), 10)]
		var parts []string
		for _, d := range shown {
			parts = append(parts, fmt.Sprintf("%s (uid %s) %s after its previous poll, %s", taskName(d.task), rr.uids[d.task], round(d.gap), rr.phaseAt(d.at)))
		}
		more := ""
		if len(rr.duplicates) > len(shown) {
			more = fmt.Sprintf(" (%d of the %d kept)", len(shown), len(rr.duplicates))
		}
		fmt.Fprintf(b, "- Duplicate polls in the ring's measured windows%s: %s.\n", more, strings.Join(parts, "; "))
	}
	if rr.steadyLate.late > 0 || (rr.kill != nil && rr.kill.others.late > 0) {
		fmt.Fprintf(b, "- Tasks late beyond %s: ring steady %d", lateTolerance(c.interval), rr.steadyLate.late)
		if rr.kill != nil {
			fmt.Fprintf(b, ", kill (others' tasks) %d, kill (the dead replica's) %d", rr.kill.others.late, rr.kill.dead.late)
		}
		if rr.rollout != nil {
			fmt.Fprintf(b, ", rollout %d", rr.rollout.all.late)
		}
		b.WriteString(".\n")
	}
}
