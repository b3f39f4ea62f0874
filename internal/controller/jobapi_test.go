package controller

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// jobAnswer scripts the fake job API's answer to one start request.
type jobAnswer struct {
	// status and body answer at once; body may hold %s for the job's ID.
	status int
	body   string
	// hang holds the answer back until the test releases it (or the client gives up): after the job was
	// created, unless noJob.
	hang bool
	// noJob answers without creating a job.
	noJob bool
}

// jobAPI is a vendor's job API in the shape of many JSON APIs: POST /jobs starts a job and answers 201
// {"id": ...}; GET /jobs/{id} answers {"state": "running" | "done"}; a job is done once it has been polled
// pollsToFinish times. With an Idempotency-Key header, a repeated key gets the first job again, as the IETF
// Idempotency-Key draft describes (a 409 while the first request with the key is still being answered). It
// counts the start requests it received, the jobs it created and the most jobs running at once, so that tests
// can assert that nothing was sent twice and nothing was lost.
type jobAPI struct {
	server        *httptest.Server
	pollsToFinish int

	mu         sync.Mutex
	answers    []jobAnswer // the next start requests' answers, in order; then 201
	starts     int
	jobs       map[string]*job
	byKey      map[string]string
	inFlight   map[string]bool
	running    int
	maxRunning int
	release    chan struct{}
	received   chan struct{} // one value per start request, for tests that act while one is in flight
}

type job struct {
	polls int
	done  bool
}

func newJobAPI(t *testing.T, pollsToFinish int) *jobAPI {
	t.Helper()
	api := &jobAPI{pollsToFinish: pollsToFinish, jobs: map[string]*job{}, byKey: map[string]string{}, inFlight: map[string]bool{},
		release: make(chan struct{}), received: make(chan struct{}, 1000)}
	api.server = httptest.NewServer(http.HandlerFunc(api.handle))
	t.Cleanup(func() { api.releaseAll(); api.server.Close() })
	return api
}

func (api *jobAPI) releaseAll() {
	api.mu.Lock()
	defer api.mu.Unlock()
	select {
	case <-api.release:
	default:
		close(api.release)
	}
}

// script sets the answers of the next start requests.
func (api *jobAPI) script(answers ...jobAnswer) {
	api.mu.Lock()
	defer api.mu.Unlock()
	api.answers = append(api.answers, answers...)
}

func (api *jobAPI) counts() (starts, jobs, maxRunning int) {
	api.mu.Lock()
	defer api.mu.Unlock()
	return api.starts, len(api.jobs), api.maxRunning
}

func (api *jobAPI) handle(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/jobs":
		api.start(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/jobs/"):
		api.poll(w, strings.TrimPrefix(r.URL.Path, "/jobs/"))
	default:
		http.NotFound(w, r)
	}
}

func (api *jobAPI) start(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	key := r.Header.Get("Idempotency-Key")
	api.mu.Lock()
	api.starts++
	answer := jobAnswer{status: http.StatusCreated, body: `{"id":"%s"}`}
	if len(api.answers) > 0 {
		answer, api.answers = api.answers[0], api.answers[1:]
	}
	if key != "" && api.inFlight[key] {
		api.mu.Unlock()
		api.received <- struct{}{}
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":"a request with this Idempotency-Key is being processed"}`))
		return
	}
	id, seen := api.byKey[key]
	if !answer.noJob && (key == "" || !seen) {
		id = fmt.Sprintf("job-%d", len(api.jobs)+1)
		api.jobs[id] = &job{}
		api.running++
		api.maxRunning = max(api.maxRunning, api.running)
		if key != "" {
			api.byKey[key] = id
		}
	}
	if key != "" && seen { // the first request's answer again
		answer = jobAnswer{status: http.StatusCreated, body: `{"id":"%s"}`}
	}
	if answer.hang && key != "" {
		api.inFlight[key] = true
	}
	release := api.release
	api.mu.Unlock()
	api.received <- struct{}{}
	if answer.hang {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		api.mu.Lock()
		delete(api.inFlight, key)
		api.mu.Unlock()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(answer.status)
	_, _ = fmt.Fprintf(w, answer.body, id)
}

func (api *jobAPI) poll(w http.ResponseWriter, id string) {
	api.mu.Lock()
	j, ok := api.jobs[id]
	state := "running"
	if ok {
		j.polls++
		if !j.done && j.polls >= api.pollsToFinish {
			j.done = true
			api.running--
		}
		if j.done {
			state = "done"
		}
	}
	api.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"no such job"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "state": state})
}

// waitForStarts waits until the API received n start requests in all.
func (api *jobAPI) waitForStarts(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(eventually)
	for {
		if starts, _, _ := api.counts(); starts >= n {
			return
		}
		select {
		case <-api.received:
		case <-deadline:
			starts, _, _ := api.counts()
			t.Fatalf("the job API received %d start requests, want %d", starts, n)
		}
	}
}

// jobBackendSpec is an HTTP TaskBackend for the job API with one operation, start; keyed adds an
// Idempotency-Key header, maxRunning a queue.
func jobBackendSpec(api *jobAPI, keyed bool, maxRunning int32) v1alpha1.TaskBackendSpec {
	op := v1alpha1.Operation{Name: "start", Path: "/jobs", TaskID: "response.body.id"}
	if keyed {
		op.IdempotencyKeyHeader = "Idempotency-Key"
	}
	if maxRunning > 0 {
		op.MaxRunning = &maxRunning
	}
	return v1alpha1.TaskBackendSpec{
		Type: v1alpha1.BackendTypeHTTP, URL: api.server.URL,
		RequestTimeout: &metav1.Duration{Duration: time.Second},
		HTTP: &v1alpha1.HTTPSettings{Path: "/jobs/{taskID}", Auth: &v1alpha1.HTTPAuth{Method: v1alpha1.HTTPAuthNone},
			Expressions: v1alpha1.HTTPExpressions{Phase: "response.body.state == 'done' ? 'Succeeded' : 'Running'", VendorStatus: "response.body.state"}},
		Operations: []v1alpha1.Operation{op},
	}
}

// submitting makes a task start the backend's operation start with a small body.
func submitting(task *v1alpha1.AsyncTask) {
	task.Spec.TaskID = ""
	task.Spec.Submit = &v1alpha1.SubmitSpec{Operation: "start", Body: &v1alpha1.JSON{Raw: []byte(`{"name":"` + task.Name + `"}`)}}
}
