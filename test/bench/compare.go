package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// runJSON is what -json writes: the run's settings, the manager binary, every row with its numbers, and the
// Markdown report.
type runJSON struct {
	When        time.Time     `json:"when"`
	Manager     managerBinary `json:"manager"`
	Tasks       int           `json:"tasks"`
	Finished    int           `json:"finished"`
	Interval    string        `json:"interval"`
	Window      string        `json:"window"`
	Concurrency int           `json:"concurrency"`
	QPS         int           `json:"qps"`
	Burst       int           `json:"burst"`
	Phases      []string      `json:"phases"`
	// Replicas and the Lease timings are the ring's (-replicas); absent in a run without one.
	Replicas     int    `json:"replicas,omitempty"`
	Kill         bool   `json:"kill,omitempty"`
	LeaseTimings string `json:"leaseTimings,omitempty"`
	Rows         []row  `json:"rows"`
	Markdown     string `json:"markdown"`
}

func (r results) writeJSON(path, markdown string) error {
	c := r.cfg
	out := runJSON{When: time.Now().UTC(), Manager: r.manager, Tasks: c.tasks, Finished: c.finished, Interval: c.interval.String(),
		Window: c.window.String(), Concurrency: c.concurrency, QPS: c.qps, Burst: c.burst, Phases: c.phases, Rows: r.rows(),
		Markdown: markdown}
	if r.ring.ran {
		l := c.leases
		out.Replicas, out.Kill = c.replicas, c.kill
		out.LeaseTimings = fmt.Sprintf("%s/%s/%s", l.duration, l.renewDeadline, l.retryPeriod)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readRunJSON(path string) (runJSON, error) {
	var r runJSON
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// compareRuns is -compare BASE.json,NEW.json: both reports, then every number of the rows both runs have,
// with the ratio new / base.
func compareRuns(w io.Writer, arg string) error {
	basePath, newPath, ok := strings.Cut(arg, ",")
	if !ok {
		return fmt.Errorf("-compare wants BASE.json,NEW.json, not %q", arg)
	}
	base, err := readRunJSON(basePath)
	if err != nil {
		return err
	}
	cur, err := readRunJSON(newPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "## Base: manager %s\n\n%s\n## New: manager %s\n\n%s\n", base.Manager.Label, base.Markdown, cur.Manager.Label, cur.Markdown)
	fmt.Fprintf(w, "## New / base\n\nBase: %s.  \nNew: %s.\n\n", base.Manager, cur.Manager)
	if base.Tasks != cur.Tasks || base.Finished != cur.Finished || base.Interval != cur.Interval || base.Window != cur.Window ||
		base.Concurrency != cur.Concurrency || base.QPS != cur.QPS || base.Burst != cur.Burst ||
		base.Replicas != cur.Replicas || base.Kill != cur.Kill || base.LeaseTimings != cur.LeaseTimings {
		fmt.Fprintf(w, "**The runs' settings differ** (base: %s; new: %s): the ratios compare unlike runs.\n\n", settings(base), settings(cur))
	}
	fmt.Fprintln(w, "| Measure | Value | Base | New | New / base | Verdict base → new |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|")
	baseRows := map[string]row{}
	for _, x := range base.Rows {
		baseRows[x.Key] = x
	}
	for _, x := range cur.Rows {
		old, ok := baseRows[x.Key]
		if !ok {
			continue
		}
		oldValues := map[string]value{}
		for _, v := range old.Values {
			oldValues[v.Name] = v
		}
		for i, v := range x.Values {
			o, ok := oldValues[v.Name]
			if !ok {
				continue
			}
			measure, verdicts := "", ""
			if i == 0 {
				measure, verdicts = x.Measure, old.Verdict+" → "+x.Verdict
				if old.Verdict == x.Verdict {
					verdicts = x.Verdict
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", measure, v.Name, number(o), number(v), quotient(v.Value, o.Value), verdicts)
		}
	}
	return nil
}

func settings(r runJSON) string {
	s := fmt.Sprintf("%d running, %d finished, interval %s, window %s, concurrency %d, qps %d, burst %d", r.Tasks, r.Finished,
		r.Interval, r.Window, r.Concurrency, r.QPS, r.Burst)
	if r.Replicas > 0 {
		s += fmt.Sprintf(", %d replicas, kill %t, Leases %s", r.Replicas, r.Kill, r.LeaseTimings)
	}
	return s
}

func number(v value) string {
	s := fmt.Sprintf("%.3g", v.Value)
	if math.Abs(v.Value) >= 1000 {
		s = fmt.Sprintf("%.0f", v.Value)
	}
	if v.Unit != "" {
		s += " " + v.Unit
	}
	return s
}

func quotient(a, b float64) string {
	switch {
	case b == 0 && a == 0:
		return "="
	case b == 0:
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}
