// Package vendorsim simulates the task-status APIs of the seed vendors (API Gateway, Network Insight, Traffic
// Ops, ZStack) and a generic JSON job API, for tests, the demo and benchmarks. Tasks are scripted in
// vendor-neutral Steps that each vendor's handler turns into that vendor's documented wire format, and the
// simulator counts polls per task and logins per vendor, so tests can assert "no poll after finish" and "one
// login per backend". Each vendor's documented start endpoint creates jobs that its status endpoint then
// answers; start.go has the controls that count start requests and break them.
//
// One Simulator serves every vendor on one port: their paths do not overlap.
package vendorsim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Phase is a vendor-neutral task state; each vendor handler spells it in its own words.
type Phase string

// Phases of a simulated task.
const (
	Pending   Phase = "Pending"
	Running   Phase = "Running"
	Succeeded Phase = "Succeeded"
	Failed    Phase = "Failed"
)

// Step is one answer to a poll. A task answers its Steps in order, one per poll, and repeats the last.
type Step struct {
	Phase Phase
	// Progress is the percent done, for vendors that report one.
	Progress int
	// Message is a human message (an error message on failure).
	Message string
	// Result is the task's result as JSON text, for finished tasks.
	Result string

	// HTTPStatus, when set, answers this error status with the vendor's documented error body instead.
	HTTPStatus int
	// RawBody, when set, answers HTTP 200 (or HTTPStatus) with this body verbatim: for garbage answers.
	RawBody string
	// RetryAfter is sent as a Retry-After header (seconds) with HTTPStatus 429 or 503.
	RetryAfter int
	// Delay holds the answer back this long: for slow vendors.
	Delay time.Duration
}

// Credentials are what the simulator accepts, for every vendor alike.
type Credentials struct {
	// Token is accepted as a fixed token: X-Auth-Token (API Gateway), "NetworkInsight <token>", the Traffic Ops
	// token login, and a ZStack session ID.
	Token string
	// Username and Password are accepted by the logins: Network Insight, Traffic Ops, API Gateway IAM, and
	// ZStack (as accountName, with the password's SHA-512).
	Username string
	Password string
	// AccessKey and SecretKey are accepted for API Gateway request signing.
	AccessKey string
	SecretKey string
}

// Simulator holds the scripted tasks and the sessions of every simulated vendor.
type Simulator struct {
	creds Credentials

	mu       sync.Mutex
	tasks    map[string]*task
	logins   map[string]int
	sessions map[string]string // issued session token -> vendor
	// outage, when not 0, answers every request with this status: the whole vendor is down.
	outage int
	// requestLog records each request's arrival and path, for rate assertions.
	requestLog []loggedRequest
	// starts holds the start requests received and the jobs they created (start.go).
	starts startState
	// keepPollTimes makes every task remember when it was polled (PollTimes).
	keepPollTimes bool
}

type task struct {
	steps []Step
	polls int
	// polledAt holds the time of each poll, when the simulator keeps them (KeepPollTimes).
	polledAt []time.Time
	// every, when set, advances the script by time (one step per every since created) instead of per poll.
	every   time.Duration
	created time.Time
}

// New returns a Simulator that accepts creds.
func New(creds Credentials) *Simulator {
	return &Simulator{creds: creds, tasks: map[string]*task{}, logins: map[string]int{}, sessions: map[string]string{},
		starts: newStartState()}
}

// AddTask scripts a task; polls of it answer steps in order. Adding an existing ID replaces its script and
// resets its poll count.
func (s *Simulator) AddTask(id string, steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[id] = &task{steps: steps}
}

// AddTimedTask scripts a task whose answer moves on by time: step i is answered from i*every after now.
func (s *Simulator) AddTimedTask(id string, every time.Duration, steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[id] = &task{steps: steps, every: every, created: time.Now()}
}

// Polls counts the polls of a task, so that a test can tell whether the operator asked at all.
func (s *Simulator) Polls(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[id]; ok {
		return t.polls
	}
	return 0
}

// KeepPollTimes makes the simulator remember when each task was polled, for PollTimes: tests of several
// operator replicas check from them that no task is polled twice within half an interval, or left unpolled.
func (s *Simulator) KeepPollTimes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepPollTimes = true
}

// PollTimes returns when the task was polled, in order, since KeepPollTimes.
func (s *Simulator) PollTimes(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[id]; ok {
		return slices.Clone(t.polledAt)
	}
	return nil
}

// Logins counts the logins a vendor served, so that a test can prove a session is shared and renewed only
// when it must be.
func (s *Simulator) Logins(vendor string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins[vendor]
}

// poll counts a poll of id and returns the step it answers, or false for an unknown task.
func (s *Simulator) poll(id string) (Step, bool) {
	return s.step(id, true)
}

// peek returns the step the task answered last (its first before any poll) without counting a poll, or false
// for an unknown task.
func (s *Simulator) peek(id string) (Step, bool) {
	return s.step(id, false)
}

// step returns the step of task id that the next poll answers (next, counting that poll) or that the last poll
// answered; a timed task answers by time either way.
func (s *Simulator) step(id string, next bool) (Step, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || len(t.steps) == 0 {
		return Step{}, false
	}
	i := max(t.polls-1, 0)
	if next {
		i = t.polls
		t.polls++
		if s.keepPollTimes {
			t.polledAt = append(t.polledAt, time.Now())
		}
	}
	if t.every > 0 {
		i = int(time.Since(t.created) / t.every)
	}
	step := t.steps[min(i, len(t.steps)-1)]
	if next {
		s.finishPolled(id, step)
	}
	return step, true
}

// issueSession records a login to vendor and returns a new session token.
func (s *Simulator) issueSession(vendor string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logins[vendor]++
	token := fmt.Sprintf("%s-session-%d-%d", strings.ToLower(vendor), s.logins[vendor], rand.Int64())
	s.sessions[token] = vendor
	return token
}

// validSession reports whether token is a live session of vendor, or the fixed Token.
func (s *Simulator) validSession(vendor, token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return token != "" && (token == s.creds.Token || s.sessions[token] == vendor)
}

// ExpireSessions ends every session issued so far, as the vendors' session timeouts do.
func (s *Simulator) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// Handler answers for every simulated vendor on one server: their paths do not overlap.
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	s.registerAPIGateway(mux)
	s.registerNetworkInsight(mux)
	s.registerTrafficOps(mux)
	s.registerZStack(mux)
	s.registerHTTPJobs(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		i := len(s.requestLog)
		s.requestLog = append(s.requestLog, loggedRequest{at: time.Now(), path: r.URL.Path})
		outage := s.outage
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.requestLog[i].done = time.Now()
			s.mu.Unlock()
		}()
		if outage != 0 {
			// What a load balancer in front of a vendor that is down answers; no vendor body.
			http.Error(w, http.StatusText(outage), outage)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// SetOutage makes every vendor answer status to every request (0 ends the outage). Polls during an outage are
// not counted by Polls.
func (s *Simulator) SetOutage(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = status
}

type loggedRequest struct {
	at, done time.Time
	path     string
}

// MaxConcurrent returns the most requests whose path contains pathPart that were being answered at the same
// moment, since the given time.
func (s *Simulator) MaxConcurrent(since time.Time, pathPart string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	most := 0
	for _, r := range s.requestLog {
		if r.at.Before(since) || !strings.Contains(r.path, pathPart) {
			continue
		}
		// Requests in flight when r arrived: started no later, not yet done.
		n := 0
		for _, other := range s.requestLog {
			if strings.Contains(other.path, pathPart) && !other.at.After(r.at) && (other.done.IsZero() || other.done.After(r.at)) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// MaxRequestsPerSecond returns the most requests whose path contains pathPart ("" for all) that arrived within
// any one second since the given time.
func (s *Simulator) MaxRequestsPerSecond(since time.Time, pathPart string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var times []time.Time
	for _, r := range s.requestLog {
		if !r.at.Before(since) && strings.Contains(r.path, pathPart) {
			times = append(times, r.at)
		}
	}
	most, start := 0, 0
	for end, at := range times {
		for times[start].Before(at.Add(-time.Second)) {
			start++
		}
		most = max(most, end-start+1)
	}
	return most
}

// writeRaw answers a step's RawBody, for answers that are not the documented shape.
func writeRaw(w http.ResponseWriter, step Step) {
	status := step.HTTPStatus
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(step.RawBody))
}

// answerFault plays the fault part of a step: it holds the answer back for the step's Delay, then answers a
// RawBody verbatim, or an HTTPStatus (with its Retry-After header, when set) through vendorError, which writes
// the vendor's own error body for that status. It reports whether it answered; false leaves the step's
// documented answer to the caller.
func answerFault(w http.ResponseWriter, r *http.Request, step Step, vendorError func(status int)) bool {
	delay(r, step)
	switch {
	case step.RawBody != "":
		writeRaw(w, step)
		return true
	case step.HTTPStatus != 0:
		if step.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(step.RetryAfter))
		}
		vendorError(step.HTTPStatus)
		return true
	}
	return false
}

// delay holds an answer back for slow-vendor steps, or until the client gives up.
func delay(r *http.Request, step Step) {
	if step.Delay <= 0 {
		return
	}
	select {
	case <-time.After(step.Delay):
	case <-r.Context().Done():
	}
}

// Serve starts a Simulator accepting creds on a local test server, closed when the test ends, and returns it
// with its base URL.
func Serve(t testing.TB, creds Credentials) (*Simulator, string) {
	t.Helper()
	sim := New(creds)
	server := httptest.NewServer(sim.Handler())
	t.Cleanup(server.Close)
	t.Cleanup(sim.ReleaseHung) // cleanups run last first: held start requests end before Close waits for them
	return sim, server.URL
}

// Requests counts the requests since the given time whose path contains pathPart.
func (s *Simulator) Requests(since time.Time, pathPart string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requestLog {
		if !r.at.Before(since) && strings.Contains(r.path, pathPart) {
			n++
		}
	}
	return n
}
