package vendorsim

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Starting jobs (an AsyncTask's spec.submit). Every vendor's start endpoint creates a job that the vendor's
// existing status endpoint then answers, scripted in Steps like AddTask's tasks (SetJobScript). The controls
// below count what arrived, exactly, and break the next start requests of an endpoint (InjectStartFaults).
//
// A control's match names which start requests it is about: one of the endpoint names below, a vendor's name
// (as Logins takes it; HTTPVendor for the generic job API) for all its endpoints, the exact URL path of the
// request as it was sent (escaped, without the query), or "" for every start request. Tests that share one
// Simulator keep apart by path: their own API Gateway project, ZStack collection, generic queue
// (/generic/v1/queues/{queue}/jobs) or Traffic Ops version; Network Insight has one fixed path.

// Start endpoints, by the names the controls take.
const (
	// APIGatewayImport is POST /v2/{project_id}/apigw/instances/{instance_id}/openapi/async-import.
	APIGatewayImport = "APIGateway/openapi/async-import"
	// APIGatewayExport is POST /v2/{project_id}/apigw/instances/{instance_id}/openapi/async-export.
	APIGatewayExport = "APIGateway/openapi/async-export"
	// NetworkInsightSave is POST /api/ni/groups/discovered-applications/save.
	NetworkInsightSave = "NetworkInsight/groups/discovered-applications/save"
	// TrafficOpsACME is POST /api/{version}/deliveryservices/sslkeys/generate/acme.
	TrafficOpsACME = "TrafficOps/deliveryservices/sslkeys/generate/acme"
	// ZStackAsyncAPI is any asynchronous ZStack API call: POST or PUT /zstack/v1/{resource...}, such as
	// POST /zstack/v1/vm-instances (CreateVmInstance).
	ZStackAsyncAPI = "ZStack/async-api"
	// HTTPJobs is the generic job API: POST /generic/v1/jobs and POST /generic/v1/queues/{queue}/jobs.
	HTTPJobs = "HTTP/jobs"
)

// HTTPVendor is the generic job API's vendor name, for the controls' match.
const HTTPVendor = "HTTP"

// maxStartBody is the most of a start request's body the simulator reads.
const maxStartBody = 16 << 20

// JobScript is how the jobs a start endpoint creates answer their polls.
type JobScript struct {
	// Steps answer the job's polls in order and repeat the last, as AddTask's do. Default: Running at 50%,
	// then Succeeded.
	Steps []Step
	// Every, when set, moves the script on by time instead of per poll, as AddTimedTask does: step i is
	// answered from i*Every after the job was created. The job finishes at its first Succeeded or Failed step
	// (without HTTPStatus or RawBody), polled or not; without Every it finishes when a poll answers that step.
	Every time.Duration
}

// defaultJobScript is the script of jobs no SetJobScript covers.
var defaultJobScript = JobScript{Steps: []Step{{Phase: Running, Progress: 50}, {Phase: Succeeded}}}

// Fault is what the next start requests of an endpoint meet instead of the vendor's documented answer. Set
// exactly one of Status, NoID, Hang and Reset.
type Fault struct {
	// Status answers this HTTP status with the vendor's documented error body for it (400, 429, 500, 503, ...).
	Status int
	// RetryAfter is sent as a Retry-After header (seconds) with Status.
	RetryAfter int
	// NoID creates the job and answers the endpoint's success status with a body (and headers) that hold no
	// job ID.
	NoID bool
	// Hang holds the request without an answer until ReleaseHung is called or the client gives up, then
	// closes the connection. The generic job API holds the request's Idempotency-Key meanwhile: a request
	// with the same key answers 409.
	Hang bool
	// Reset closes the connection after reading the request, without an answer.
	Reset bool
	// Create processes the request as the vendor would (creating the job, or refusing a duplicate) before
	// Status, Hang or Reset replaces its answer: the vendor acted, and its answer was lost. Without it nothing
	// is processed. NoID always creates.
	Create bool
}

// StartRecord is one start request the simulator received.
type StartRecord struct {
	// Endpoint is one of the endpoint names (APIGatewayImport, ...).
	Endpoint string
	// Method and Path are the request's method and URL path as sent (escaped, without the query).
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// Key is the request's Idempotency-Key (generic job API) or X-Job-UUID (ZStack), "" when none.
	Key string
	// Status is the HTTP status answered; 0 while unanswered, and for a request hung or reset.
	Status int
	// JobID is the job the request created; "" when it created none.
	JobID string
	// Hung is true while the request is held by a Hang fault.
	Hung bool
	// At is when the request arrived.
	At time.Time
}

// vendor is the vendor part of the endpoint's name.
func (r *StartRecord) vendor() string {
	vendor, _, _ := strings.Cut(r.Endpoint, "/")
	return vendor
}

func (r *StartRecord) matches(match string) bool {
	return match == "" || match == r.Endpoint || match == r.vendor() || match == r.Path
}

// simJob is a job a start request created.
type simJob struct {
	id      string
	rec     *StartRecord
	created time.Time
	// finished is when the job ended (it may lie ahead for a timed script); zero while it runs.
	finished time.Time
	// expired is set by ExpireJob: the vendor purged the job.
	expired bool
	// taskType is API Gateway's task_type of the job.
	taskType string
}

type faultEntry struct {
	match string
	left  int
	fault Fault
}

// keyEntry is the generic job API's memory of one Idempotency-Key.
type keyEntry struct {
	fingerprint string
	// inFlight is true while a request with the key is being processed.
	inFlight bool
	// answer is the answer of the request that was processed with the key; nil until there is one.
	answer *startAnswer
}

// startState is the Simulator's state of start requests and jobs, guarded by its mu.
type startState struct {
	records []*StartRecord
	jobs    map[string]*simJob
	order   []*simJob
	faults  []*faultEntry
	scripts map[string]JobScript
	keys    map[string]*keyEntry
	// release is closed by ReleaseHung.
	release chan struct{}
	// nextTrafficOpsID is the next Traffic Ops async status ID to try.
	nextTrafficOpsID int
}

func newStartState() startState {
	return startState{jobs: map[string]*simJob{}, scripts: map[string]JobScript{}, keys: map[string]*keyEntry{},
		release: make(chan struct{}), nextTrafficOpsID: 100000}
}

// StartRequests counts the start requests received that match (every one: accepted, refused, duplicate,
// faulted). Requests answered by SetOutage are not counted.
func (s *Simulator) StartRequests(match string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.starts.records {
		if r.matches(match) {
			n++
		}
	}
	return n
}

// StartRecords returns copies of the start requests received that match, in arrival order.
func (s *Simulator) StartRecords(match string) []StartRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []StartRecord
	for _, r := range s.starts.records {
		if r.matches(match) {
			c := *r
			c.Header = r.Header.Clone()
			c.Body = slices.Clone(r.Body)
			out = append(out, c)
		}
	}
	return out
}

// JobsCreated counts the jobs created by start requests that match (a job created again after ExpireJob
// counts again).
func (s *Simulator) JobsCreated(match string) int {
	return len(s.JobIDs(match))
}

// JobIDs returns the IDs of the jobs created by start requests that match, in creation order.
func (s *Simulator) JobIDs(match string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, j := range s.starts.order {
		if j.rec.matches(match) {
			ids = append(ids, j.id)
		}
	}
	return ids
}

// RunningJobs counts the jobs created by start requests that match that have not finished.
func (s *Simulator) RunningJobs(match string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	n := 0
	for _, j := range s.starts.order {
		if j.rec.matches(match) && (j.finished.IsZero() || j.finished.After(now)) {
			n++
		}
	}
	return n
}

// MaxRunningJobs returns the highest number of jobs, created by start requests that match, that were running
// (created and not finished) at the same moment. A job that finishes the moment another is created does not
// overlap it.
func (s *Simulator) MaxRunningJobs(match string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	type event struct {
		at    time.Time
		delta int
	}
	var events []event
	for _, j := range s.starts.order {
		if !j.rec.matches(match) {
			continue
		}
		events = append(events, event{j.created, +1})
		if !j.finished.IsZero() {
			events = append(events, event{j.finished, -1})
		}
	}
	sort.SliceStable(events, func(a, b int) bool {
		if !events[a].at.Equal(events[b].at) {
			return events[a].at.Before(events[b].at)
		}
		return events[a].delta < events[b].delta // ends before starts at the same moment
	})
	most, n := 0, 0
	for _, e := range events {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// KeyRequests counts the start requests that carried key as their Idempotency-Key (generic job API) or
// X-Job-UUID (ZStack), whatever they were answered.
func (s *Simulator) KeyRequests(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.starts.records {
		if r.Key != "" && r.Key == key {
			n++
		}
	}
	return n
}

// KeyJobs counts the jobs created by start requests that carried key: at most one per key, unless ExpireJob
// purged a ZStack job and its UUID was sent again.
func (s *Simulator) KeyJobs(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, j := range s.starts.order {
		if j.rec.Key != "" && j.rec.Key == key {
			n++
		}
	}
	return n
}

// SetJobScript scripts the jobs that start requests matching match create from now on. The most specific
// script applies: the request's path, then its endpoint, its vendor, then "".
func (s *Simulator) SetJobScript(match string, script JobScript) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts.scripts[match] = script
}

// InjectStartFaults makes the next n start requests that match, once authenticated and well-formed, meet f
// instead of the vendor's documented answer. Faults injected earlier are played first. It panics when f does
// not set exactly one of Status, NoID, Hang and Reset.
func (s *Simulator) InjectStartFaults(match string, n int, f Fault) {
	kinds := 0
	for _, set := range []bool{f.Status != 0, f.NoID, f.Hang, f.Reset} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		panic("vendorsim: a Fault sets exactly one of Status, NoID, Hang and Reset")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts.faults = append(s.starts.faults, &faultEntry{match: match, left: n, fault: f})
}

// HungRequests counts the start requests that match held by a Hang fault now.
func (s *Simulator) HungRequests(match string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.starts.records {
		if r.Hung && r.matches(match) {
			n++
		}
	}
	return n
}

// ReleaseHung ends every hang: the held requests' connections are closed without an answer. Serve calls it
// when the test ends, before closing its server; a test serving Handler itself must call it before closing
// its server, whose Close waits for held requests.
func (s *Simulator) ReleaseHung() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.starts.release)
	s.starts.release = make(chan struct{})
}

// ExpireJob purges a created job, as vendors purge finished jobs (ZStack after 3 hours): its polls answer as
// for an unknown job (ZStack 404 "the job has been expired"), and its ZStack UUID may be sent again, creating
// a new job. A running job ends. It reports whether there was such a job.
func (s *Simulator) ExpireJob(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.starts.jobs[id]
	if !ok || j.expired {
		return false
	}
	j.expired = true
	if now := time.Now(); j.finished.IsZero() || j.finished.After(now) {
		j.finished = now
	}
	delete(s.tasks, id)
	return true
}

// jobTaskType returns API Gateway's task_type of a created job, def for any other task.
func (s *Simulator) jobTaskType(id, def string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.starts.jobs[id]; ok && j.taskType != "" {
		return j.taskType
	}
	return def
}

// finishPolled marks a created job finished when a poll answers one of its final steps. s.mu is held.
func (s *Simulator) finishPolled(id string, step Step) {
	if j, ok := s.starts.jobs[id]; ok && j.finished.IsZero() && finalStep(step) {
		j.finished = time.Now()
	}
}

// finalStep reports whether a step says the job ended.
func finalStep(step Step) bool {
	return (step.Phase == Succeeded || step.Phase == Failed) && step.HTTPStatus == 0 && step.RawBody == ""
}

// scriptFor returns the script of a new job of rec. s.mu is held.
func (s *Simulator) scriptFor(rec *StartRecord) JobScript {
	for _, m := range []string{rec.Path, rec.Endpoint, rec.vendor(), ""} {
		if script, ok := s.starts.scripts[m]; ok {
			return script
		}
	}
	return defaultJobScript
}

// createJob creates the job id of rec, scripted by the matching JobScript, unless a job with that ID exists
// (and was not expired). It reports whether it created one.
func (s *Simulator) createJob(rec *StartRecord, id, taskType string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.starts.jobs[id]; ok && !j.expired {
		return false
	}
	script := s.scriptFor(rec)
	now := time.Now()
	j := &simJob{id: id, rec: rec, created: now, taskType: taskType}
	if script.Every > 0 {
		for i, step := range script.Steps {
			if finalStep(step) {
				j.finished = now.Add(time.Duration(i) * script.Every)
				break
			}
		}
	}
	s.starts.jobs[id] = j
	s.starts.order = append(s.starts.order, j)
	s.tasks[id] = &task{steps: slices.Clone(script.Steps), every: script.Every, created: now}
	rec.JobID = id
	return true
}

// takeFault returns the fault the next request of rec meets, if any, and counts it used. s.mu is not held.
func (s *Simulator) takeFault(rec *StartRecord) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.starts.faults {
		if !rec.matches(e.match) {
			continue
		}
		f := e.fault
		if e.left--; e.left <= 0 {
			s.starts.faults = slices.Delete(s.starts.faults, i, i+1)
		}
		return &f
	}
	return nil
}

// startAnswer is the documented answer to a start request the vendor processed.
type startAnswer struct {
	status int
	header http.Header
	body   []byte
}

func jsonAnswer(status int, body []byte) startAnswer {
	return startAnswer{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: body}
}

// startCall is one start request being answered. Its writer records the answer's status in the record.
type startCall struct {
	s   *Simulator
	rec *StartRecord
	w   http.ResponseWriter
	r   *http.Request
	// done, when set, runs once before the request is answered or its connection closed (the generic API
	// lets go of the request's Idempotency-Key), so that a client that resends at once finds it free.
	done func()
}

func (c *startCall) finish() {
	if c.done != nil {
		done := c.done
		c.done = nil
		done()
	}
}

// beginStart records a start request to endpoint and reads its body. It reports false, having answered 413,
// when the body cannot be read whole.
func (s *Simulator) beginStart(w http.ResponseWriter, r *http.Request, endpoint string) (*startCall, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxStartBody))
	rec := &StartRecord{Endpoint: endpoint, Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(),
		Body: body, At: time.Now()}
	s.mu.Lock()
	s.starts.records = append(s.starts.records, rec)
	s.mu.Unlock()
	c := &startCall{s: s, rec: rec, r: r}
	c.w = &recordingWriter{ResponseWriter: w, call: c}
	if err != nil {
		// What a front proxy answers to a body it will not take; no vendor body.
		http.Error(c.w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return c, true
}

// setKey records the request's idempotency key.
func (c *startCall) setKey(key string) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.rec.Key = key
}

// serve answers the request: with process's documented answer, or as the next fault of the request says.
// vendorError writes the vendor's error body for a status; withoutID turns a success answer into one that
// holds no job ID.
func (c *startCall) serve(process func() startAnswer, vendorError func(w http.ResponseWriter, status int), withoutID func(startAnswer) startAnswer) {
	f := c.s.takeFault(c.rec)
	if f == nil {
		c.answer(process())
		return
	}
	var a startAnswer
	if f.Create || f.NoID {
		a = process()
	}
	switch {
	case f.Hang:
		c.hang()
		c.abort()
	case f.Reset:
		c.abort()
	case f.Status != 0:
		if f.RetryAfter > 0 {
			c.w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		c.finish()
		vendorError(c.w, f.Status)
	case f.NoID && a.status >= 200 && a.status < 300:
		c.answer(withoutID(a))
	default:
		c.answer(a) // the vendor refused the request (a duplicate, say): there is no ID to leave out
	}
}

func (c *startCall) answer(a startAnswer) {
	c.finish()
	for k, v := range a.header {
		c.w.Header()[k] = v
	}
	c.w.WriteHeader(a.status)
	_, _ = c.w.Write(a.body)
}

// hang holds the request until ReleaseHung or the client gives up.
func (c *startCall) hang() {
	c.s.mu.Lock()
	release := c.s.starts.release
	c.rec.Hung = true
	c.s.mu.Unlock()
	select {
	case <-release:
	case <-c.r.Context().Done():
	}
	c.s.mu.Lock()
	c.rec.Hung = false
	c.s.mu.Unlock()
}

// abort closes the connection without an answer.
func (c *startCall) abort() {
	c.finish()
	conn, _, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // HTTP/2: the server resets the stream
	}
	_ = conn.Close()
}

// recordingWriter records the status a start request is answered in its record.
type recordingWriter struct {
	http.ResponseWriter
	call *startCall
	// wrote is set once a status is recorded.
	wrote bool
}

func (w *recordingWriter) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		w.call.s.mu.Lock()
		w.call.rec.Status = status
		w.call.s.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Hijack).
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// randomHex returns n random bytes in hex: IDs of 2n hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// baseURL is the scheme and host the request was sent to, for the URLs an answer holds.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}
