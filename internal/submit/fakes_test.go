package submit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// crash is what a fake panics with to stop a pass where a killed process would stop.
type crash struct{ at string }

// fakeStore is the API server for one task: every write bumps the resourceVersion and is refused when the
// task written is not the latest. Writes can be made to conflict, and the process to crash, at a named step:
// "meta", "status" (the n-th of each, counting from 1).
type fakeStore struct {
	mu      sync.Mutex
	obj     *v1alpha1.AsyncTask
	rv      int
	writes  map[string]int
	fail    map[string]int // step -> the n-th write of it conflicts
	crashAt map[string]int // step -> the n-th write of it crashes after it is stored
	deleted bool
}

func newFakeStore() *fakeStore {
	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "t", UID: "uid-1", Generation: 1,
		CreationTimestamp: metav1.NewTime(time.Unix(1_700_000_000, 0))}}
	task.Spec.Submit = &v1alpha1.SubmitSpec{Operation: "start"}
	task.Status.ObservedGeneration = -1
	s := &fakeStore{obj: task, writes: map[string]int{}, fail: map[string]int{}, crashAt: map[string]int{}}
	s.bump()
	return s
}

func (s *fakeStore) bump() { s.rv++; s.obj.ResourceVersion = strconv.Itoa(s.rv) }

func (s *fakeStore) current() *v1alpha1.AsyncTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.obj.DeepCopy()
}

// edit changes the stored object as another writer would (a person, kubectl replace, a restore).
func (s *fakeStore) edit(f func(*v1alpha1.AsyncTask)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.obj)
	s.bump()
}

var gr = schema.GroupResource{Group: "tasks.asynctask.dev", Resource: "asynctasks"}

func (s *fakeStore) Get(context.Context, types.NamespacedName) (*v1alpha1.AsyncTask, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return nil, apierrors.NewNotFound(gr, "t")
	}
	return s.obj.DeepCopy(), nil
}

func (s *fakeStore) write(step string, task *v1alpha1.AsyncTask, apply func(stored *v1alpha1.AsyncTask)) (*v1alpha1.AsyncTask, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return nil, apierrors.NewNotFound(gr, "t")
	}
	s.writes[step]++
	n := s.writes[step]
	if task.ResourceVersion != s.obj.ResourceVersion || s.fail[step] == n {
		return nil, apierrors.NewConflict(gr, "t", fmt.Errorf("the object has been modified"))
	}
	apply(s.obj)
	s.bump()
	if s.crashAt[step] == n {
		panic(crash{at: step})
	}
	return s.obj.DeepCopy(), nil
}

func (s *fakeStore) SetAnnotations(_ context.Context, task *v1alpha1.AsyncTask, set map[string]string, remove []string) (*v1alpha1.AsyncTask, error) {
	return s.write("meta", task, func(o *v1alpha1.AsyncTask) {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		for k, v := range set {
			o.Annotations[k] = v
		}
		for _, k := range remove {
			delete(o.Annotations, k)
		}
	})
}

func (s *fakeStore) SetStatus(_ context.Context, task *v1alpha1.AsyncTask, status v1alpha1.AsyncTaskStatus) (*v1alpha1.AsyncTask, error) {
	return s.write("status", task, func(o *v1alpha1.AsyncTask) { o.Status = *status.DeepCopy() })
}

// answer is how the fake vendor answers one start request.
type answer struct {
	status int
	body   string
	// hang holds the answer back past the client's timeout, after the job was created or not.
	hang bool
	// noJob answers without creating a job (a refusal, or a hang before the vendor acted).
	noJob bool
}

// fakeVendor is a vendor on a real HTTP server, reached through backend.Client as the operator reaches one:
// it counts the start requests it received and the jobs it created, by key. Answers are scripted in order,
// the last repeated. A job with a key is created once per key (an idempotency key or a ZStack UUID): a
// repeated key answers the first job.
type fakeVendor struct {
	t       *testing.T
	server  *httptest.Server
	client  *backend.Client
	keyed   bool
	answers []answer

	mu        sync.Mutex
	received  int
	jobs      map[string]string // key (or a counter) -> job ID
	purged    bool              // JobExists answers "no such job" for every key
	crashSend bool              // the process dies once the vendor has answered
	down      bool              // nothing listens: every send fails before anything is written
	onReceive func()            // called when a start request arrives
	release   chan struct{}
}

func newFakeVendor(t *testing.T, keyed bool, answers ...answer) *fakeVendor {
	t.Helper()
	v := &fakeVendor{t: t, keyed: keyed, answers: answers, jobs: map[string]string{}, release: make(chan struct{})}
	v.server = httptest.NewServer(http.HandlerFunc(v.handle))
	t.Cleanup(func() { close(v.release); v.server.Close() })
	v.client = backend.NewClient(backend.ClientOptions{Timeout: 300 * time.Millisecond, QPS: 1000, Burst: 1000,
		NetworkPolicy: backend.NetworkPolicy{AllowedCIDRs: loopback}})
	return v
}

func (v *fakeVendor) handle(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	v.mu.Lock()
	if v.onReceive != nil {
		v.onReceive()
	}
	v.received++
	a := v.answers[min(v.received, len(v.answers))-1]
	key := r.Header.Get("Idempotency-Key")
	id, exists := v.jobs[key]
	if !a.noJob && (key == "" || !exists) {
		id = fmt.Sprintf("job-%d", len(v.jobs)+1)
		if key == "" {
			v.jobs[id] = id
		} else {
			v.jobs[key] = id
		}
	}
	v.mu.Unlock()
	if a.hang {
		select {
		case <-v.release:
		case <-r.Context().Done():
		}
		return
	}
	w.WriteHeader(a.status)
	_, _ = fmt.Fprintf(w, a.body, id)
}

func (v *fakeVendor) counts() (received, jobs int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.received, len(v.jobs)
}

func (v *fakeVendor) Request(_ context.Context, task *v1alpha1.AsyncTask, key string) (backend.StartRequest, error) {
	req := backend.StartRequest{Method: http.MethodPost, Path: "/jobs", Header: http.Header{}, Body: []byte(`{"name":"` + task.Name + `"}`)}
	if v.keyed {
		req.Header.Set("Idempotency-Key", key)
	}
	return req, nil
}

func (v *fakeVendor) Send(ctx context.Context, req backend.StartRequest) (*backend.Response, error) {
	url := v.server.URL
	if v.down {
		url = "http://" + closedAddress(v.t)
	}
	r, err := http.NewRequestWithContext(ctx, req.Method, url+req.Path, nil)
	if err != nil {
		return nil, err
	}
	r.Header = req.Header
	resp, err := v.client.Do(ctx, r)
	if v.crashSend {
		panic(crash{at: "send"})
	}
	return resp, err
}

func (v *fakeVendor) Answer(_ context.Context, resp *backend.Response, _ string) (bool, string, error) {
	var body struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(resp.Body, &body)
	return resp.StatusCode >= 200 && resp.StatusCode < 300, body.ID, nil
}

func (v *fakeVendor) JobExists(_ context.Context, id string) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.purged {
		return false, nil
	}
	_, ok := v.jobs[id]
	return ok, nil
}

// closedAddress is a loopback address nothing listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// runPass runs one pass of a new Submitter (a new process) on the stored task, and reports a crash.
func runPass(t *testing.T, store *fakeStore, v *fakeVendor, clock *clocktesting.FakeClock, recovery Recovery) (res Result, crashed string, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(crash)
			if !ok {
				panic(r)
			}
			crashed = c.at
		}
	}()
	s := &Submitter{Store: store, Clock: clock, SendTimeout: 2 * time.Second}
	task, gerr := store.Get(context.Background(), types.NamespacedName{})
	if gerr != nil {
		return Result{}, "", gerr
	}
	res, err = s.Run(context.Background(), Pass{Task: task, Vendor: v, Recovery: recovery, Keyed: v.keyed, Interval: time.Second})
	return res, "", err
}
