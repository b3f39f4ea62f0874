package main

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The four vendors, in the order tasks are spread over them (task i uses vendor i%4).
const (
	vAPIG = iota
	vNI
	vTO
	vZS
	numVendors
)

var vendorNames = [numVendors]string{"APIGateway", "NetworkInsight", "TrafficOps", "ZStack"}

// Kinds of vendor request.
const (
	reqPoll  = iota // the task-status query: one per poll
	reqExtra        // a second request of the same poll (ZStack's task-progresses while a job runs)
	reqLogin
	reqOther // anything else: backend checks of IDs that are no task
	numReqKinds
)

// maxSeconds bounds the per-second histogram: a run longer than this is not counted per second any more.
const maxSeconds = 7200

// counter wraps the simulator and counts every request: per vendor and kind, per vendor and second, and per
// task the polls and the time of the first poll after a mark (the restart).
type counter struct {
	next  http.Handler
	start time.Time
	// taskIndex maps a vendor task ID to its index; written before the server starts, then read only.
	taskIndex map[string]int

	byKind [numVendors][numReqKinds]atomic.Int64
	// perTenth counts requests per vendor and tenth of a second, for the largest rate in any sliding second.
	perTenth [numVendors][maxSeconds * 10]atomic.Int32
	polls    []atomic.Int32
	// firstAfterMark is the first poll of each task after mark (ns since start), 0 until then.
	firstAfterMark []atomic.Int64
	mark           atomic.Int64
	// finishedRequests counts, per vendor, the requests about a finished task (IDs with finishedIDPrefix,
	// which the simulator does not know): an operator that never polls a finished task makes none.
	finishedRequests [numVendors]atomic.Int64

	// lastPoll is each task's latest poll (ns since start), 0 before its first. longestGap is the longest time
	// between two of its polls that ended since the gap window started (startGapWindow), and longestGapEnd when
	// that gap ended: a gap that spans the window's start counts whole, as a task that went unpolled across a
	// kill does.
	lastPoll, longestGap, longestGapEnd []atomic.Int64
	// duplicateWithin is half the poll interval: two polls of one task closer than that are a duplicate, which
	// one poll per interval at the task's own moment never makes.
	duplicateWithin time.Duration
	duplicates      atomic.Int64
	dupMu           sync.Mutex
	dupExamples     []duplicatePoll
}

// duplicatePoll is one poll that came less than half an interval after the task's previous one.
type duplicatePoll struct {
	task int
	at   time.Duration // since start
	gap  time.Duration
}

// maxDuplicateExamples bounds the duplicates kept for the report until they are taken: the count goes on.
const maxDuplicateExamples = 50

// finishedIDPrefix starts the vendor task ID (and the name) of every task created finished (-finished).
const finishedIDPrefix = "done-"

func newCounter(next http.Handler, ids []string, interval time.Duration) *counter {
	c := &counter{next: next, start: time.Now(), taskIndex: make(map[string]int, len(ids)),
		polls: make([]atomic.Int32, len(ids)), firstAfterMark: make([]atomic.Int64, len(ids)),
		lastPoll: make([]atomic.Int64, len(ids)), longestGap: make([]atomic.Int64, len(ids)),
		longestGapEnd: make([]atomic.Int64, len(ids)), duplicateWithin: interval / 2}
	for i, id := range ids {
		c.taskIndex[id] = i
	}
	return c
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Since(c.start)
	vendor, kind, id := classify(r.URL.Path)
	if vendor >= 0 {
		c.byKind[vendor][kind].Add(1)
		if t := int(now / (100 * time.Millisecond)); t < maxSeconds*10 {
			c.perTenth[vendor][t].Add(1)
		}
		if strings.HasPrefix(id, finishedIDPrefix) {
			c.finishedRequests[vendor].Add(1)
		}
		if kind == reqPoll {
			if i, ok := c.taskIndex[id]; ok {
				c.polls[i].Add(1)
				if m := c.mark.Load(); m > 0 && int64(now) >= m {
					c.firstAfterMark[i].CompareAndSwap(0, int64(now))
				}
				c.notePoll(i, now)
			} else {
				c.byKind[vendor][kind].Add(-1)
				c.byKind[vendor][reqOther].Add(1)
			}
		}
	}
	c.next.ServeHTTP(w, r)
}

// classify names the vendor, the kind of request and the task ID of a simulator path.
func classify(path string) (vendor, kind int, id string) {
	segs := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	if len(segs) == 0 {
		return -1, 0, ""
	}
	last := segs[len(segs)-1]
	switch {
	case strings.Contains(path, "/async-tasks/"):
		return vAPIG, reqPoll, last
	case strings.HasPrefix(path, "/v3/auth/tokens"):
		return vAPIG, reqLogin, ""
	case strings.Contains(path, "/api/ni/groups/task/progress/"):
		return vNI, reqPoll, last
	case strings.HasPrefix(path, "/api/ni/"):
		return vNI, reqLogin, ""
	case strings.Contains(path, "/async_status/"):
		return vTO, reqPoll, last
	case strings.Contains(path, "/user/login"):
		return vTO, reqLogin, ""
	case strings.Contains(path, "/zstack/v1/api-jobs/"):
		return vZS, reqPoll, last
	case strings.Contains(path, "/zstack/v1/task-progresses/"):
		return vZS, reqExtra, last
	case strings.Contains(path, "/zstack/v1/accounts/login"):
		return vZS, reqLogin, ""
	case strings.HasPrefix(path, "/zstack/"):
		return vZS, reqOther, ""
	case strings.HasPrefix(path, "/api/"):
		return vTO, reqOther, ""
	}
	return -1, 0, ""
}

// seconds returns the elapsed time since the counter started.
func (c *counter) since() time.Duration { return time.Since(c.start) }

// setMark starts recording each task's first poll from now on.
func (c *counter) setMark() {
	now := c.since()
	for i := range c.firstAfterMark {
		c.firstAfterMark[i].Store(0)
	}
	c.mark.Store(int64(now))
}

// countSnapshot is the counters at one moment.
type countSnapshot struct {
	at     time.Duration
	polls  []int32
	byKind [numVendors][numReqKinds]int64
}

func (c *counter) snapshot() countSnapshot {
	s := countSnapshot{at: c.since(), polls: make([]int32, len(c.polls))}
	for i := range c.polls {
		s.polls[i] = c.polls[i].Load()
	}
	for v := range numVendors {
		for k := range numReqKinds {
			s.byKind[v][k] = c.byKind[v][k].Load()
		}
	}
	return s
}

// maxPerSecond returns, per vendor, the most requests in any second (a sliding window of ten tenths) that
// starts within [from, to).
func (c *counter) maxPerSecond(from, to time.Duration) [numVendors]int32 {
	var out [numVendors]int32
	tenth := 100 * time.Millisecond
	for v := range numVendors {
		for t := int(from / tenth); t <= int(to/tenth) && t+10 <= maxSeconds*10; t++ {
			var sum int32
			for k := t; k < t+10; k++ {
				sum += c.perTenth[v][k].Load()
			}
			out[v] = max(out[v], sum)
		}
	}
	return out
}

// maxPerSecondAll is maxPerSecond for all vendors together.
func (c *counter) maxPerSecondAll(from, to time.Duration) int32 {
	tenth := 100 * time.Millisecond
	var out int32
	for t := int(from / tenth); t <= int(to/tenth) && t+10 <= maxSeconds*10; t++ {
		var sum int32
		for v := range numVendors {
			for k := t; k < t+10; k++ {
				sum += c.perTenth[v][k].Load()
			}
		}
		out = max(out, sum)
	}
	return out
}

// secondBins returns, per vendor, the requests in each whole second from from (to the tenth) until to; the
// last, partial second is left out.
func (c *counter) secondBins(from, to time.Duration) [numVendors][]int32 {
	var out [numVendors][]int32
	tenth := 100 * time.Millisecond
	first := int(from / tenth)
	n := int((to - from) / time.Second)
	for v := range numVendors {
		out[v] = make([]int32, 0, n)
		for s := range n {
			var sum int32
			for k := first + 10*s; k < first+10*s+10 && k < maxSeconds*10; k++ {
				sum += c.perTenth[v][k].Load()
			}
			out[v] = append(out[v], sum)
		}
	}
	return out
}

// finishedRequestCount is the requests about finished tasks so far, all vendors.
func (c *counter) finishedRequestCount() (total int64, byVendor [numVendors]int64) {
	for v := range numVendors {
		byVendor[v] = c.finishedRequests[v].Load()
		total += byVendor[v]
	}
	return total, byVendor
}

// notePoll records a poll of task i at now for the gaps and duplicates.
func (c *counter) notePoll(i int, now time.Duration) {
	prev := c.lastPoll[i].Swap(int64(now))
	if prev == 0 {
		return
	}
	// Two replicas polling one task at once may swap in the other order: the gap is then negative, and tiny.
	gap := now - time.Duration(prev)
	if gap < 0 {
		gap = -gap
	}
	for {
		longest := c.longestGap[i].Load()
		if int64(gap) <= longest {
			break
		}
		if c.longestGap[i].CompareAndSwap(longest, int64(gap)) {
			c.longestGapEnd[i].Store(int64(now))
			break
		}
	}
	if gap >= c.duplicateWithin {
		return
	}
	c.duplicates.Add(1)
	c.dupMu.Lock()
	defer c.dupMu.Unlock()
	if len(c.dupExamples) < maxDuplicateExamples {
		c.dupExamples = append(c.dupExamples, duplicatePoll{task: i, at: now, gap: gap})
	}
}

// startGapWindow forgets the longest gaps so far: from now on each task's longest gap is measured anew.
func (c *counter) startGapWindow() {
	for i := range c.longestGap {
		c.longestGap[i].Store(0)
		c.longestGapEnd[i].Store(0)
	}
}

// taskGap is the longest time one task went unpolled in a gap window.
type taskGap struct {
	gap time.Duration
	// end is when the gap ended (since start), or the window's end when the task was not polled again by then.
	end  time.Duration
	open bool
}

// gaps returns every task's longest gap in the window that ends at end: the longest between two polls, or the
// time since its last poll when that is longer. A task never polled has none.
func (c *counter) gaps(end time.Duration) []taskGap {
	out := make([]taskGap, len(c.lastPoll))
	for i := range out {
		last := time.Duration(c.lastPoll[i].Load())
		if last == 0 {
			continue
		}
		out[i] = taskGap{gap: time.Duration(c.longestGap[i].Load()), end: time.Duration(c.longestGapEnd[i].Load())}
		if open := end - last; open > out[i].gap {
			out[i] = taskGap{gap: open, end: end, open: true}
		}
	}
	return out
}

// takeDuplicates returns the duplicates kept since the last call and forgets them, so that each measured
// window keeps its own first ones.
func (c *counter) takeDuplicates() []duplicatePoll {
	c.dupMu.Lock()
	defer c.dupMu.Unlock()
	out := c.dupExamples
	c.dupExamples = nil
	return out
}
