package zstack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/zstack"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

const vendor = "ZStack"

var (
	loginCreds   = backend.Credentials{"accountName": []byte(backendtest.SimUser), "password": []byte(backendtest.SimPassword)}
	sessionCreds = backend.Credentials{"sessionID": []byte(backendtest.SimToken)}
)

func newBackend(t *testing.T, url string, creds backend.Credentials) backend.Backend {
	t.Helper()
	return backendtest.NewBackend(t, zstack.New, v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack, URL: url}, creds)
}

func TestPollReportsTheAPIJob(t *testing.T) {
	cases := map[string]struct {
		steps       []vendorsim.Step
		wantPhase   v1alpha1.TaskPhase
		wantStatus  string
		wantProg    *int32
		wantMessage string
		wantName    string
		wantResult  string
		wantKind    backend.ErrorKind
		wantError   string
	}{
		"pending job without progress records": {
			steps:     []vendorsim.Step{{Phase: vendorsim.Pending}},
			wantPhase: v1alpha1.TaskPhaseRunning, wantStatus: "Running",
		},
		"running job with progress records": {
			steps:     []vendorsim.Step{{Phase: vendorsim.Running, Progress: 45, Message: "Download the image"}},
			wantPhase: v1alpha1.TaskPhaseRunning, wantStatus: "Running", wantProg: ptrInt32(45),
			wantMessage: "Download the image", wantName: "org.zstack.header.vm.APICreateVmInstanceMsg",
		},
		"succeeded job with its result": {
			steps:     []vendorsim.Step{{Phase: vendorsim.Succeeded, Result: `{"inventory": {"uuid": "vm-1", "state": "Running"}}`}},
			wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "Succeeded", wantResult: `{"inventory":{"uuid":"vm-1","state":"Running"}}`,
		},
		"failed job with ZStack's error": {
			steps:     []vendorsim.Step{{Phase: vendorsim.Failed, Message: "no host has enough CPU"}},
			wantPhase: v1alpha1.TaskPhaseFailed, wantStatus: "Failed",
			wantMessage: "SYS.1000: An internal error happened in system: no host has enough CPU",
		},
		"failed job with a full error body": {
			steps: []vendorsim.Step{{Phase: vendorsim.Failed,
				Result: `{"error": {"code": "VM.1003", "description": "failed to start", "details": "timeout", "cause": {"code": "HOST.1000", "description": "host disconnected"}}}`}},
			wantPhase: v1alpha1.TaskPhaseFailed, wantStatus: "Failed",
			wantMessage: "VM.1003: failed to start: timeout (cause: HOST.1000: host disconnected)",
		},
		"500 with the error body is transient": {
			steps:    []vendorsim.Step{{HTTPStatus: 500}},
			wantKind: backend.KindTransient, wantError: "vendor answered HTTP 500: SYS.1000",
		},
		"503 with Retry-After is transient and says how long": {
			steps:    []vendorsim.Step{{HTTPStatus: 503, RetryAfter: 7}},
			wantKind: backend.KindTransient, wantError: "vendor answered HTTP 503",
		},
		"404 plain text is not found": {
			steps:    []vendorsim.Step{{HTTPStatus: 404}},
			wantKind: backend.KindNotFound, wantError: "the job has been expired",
		},
		"400 plain text is terminal": {
			steps:    []vendorsim.Step{{HTTPStatus: 400}},
			wantKind: backend.KindTerminal, wantError: "HTTP 400: Bad Request",
		},
		"a body that is not JSON is transient": {
			steps:    []vendorsim.Step{{RawBody: "<html>maintenance</html>"}},
			wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
		"a 502 proxy page is transient": {
			steps:    []vendorsim.Step{{HTTPStatus: 502, RawBody: "<html>502 Bad Gateway</html>"}},
			wantKind: backend.KindTransient, wantError: "HTTP 502",
		},
	}
	for name, tc := range cases {
		for credName, creds := range map[string]backend.Credentials{"login": loginCreds, "sessionID": sessionCreds} {
			t.Run(name+" with "+credName, func(t *testing.T) {
				g := NewWithT(t)
				sim, url := backendtest.StartSim(t)
				sim.AddTask("job-1", tc.steps...)
				obs, err := newBackend(t, url, creds).Poll(context.Background(), "job-1")
				if tc.wantKind != "" {
					g.Expect(err).To(HaveOccurred())
					g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
					g.Expect(err.Error()).To(ContainSubstring(tc.wantError))
					backendtest.ExpectNoSecret(g, err.Error())
					if tc.steps[0].RetryAfter > 0 {
						e, _ := backend.AsError(err)
						g.Expect(e.RetryAfter).To(Equal(time.Duration(tc.steps[0].RetryAfter) * time.Second))
					}
					return
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(obs.Phase).To(Equal(tc.wantPhase))
				g.Expect(obs.VendorStatus).To(Equal(tc.wantStatus))
				g.Expect(obs.Progress).To(Equal(tc.wantProg))
				g.Expect(obs.Message).To(Equal(tc.wantMessage))
				g.Expect(obs.TaskName).To(Equal(tc.wantName))
				if tc.wantResult != "" {
					g.Expect(string(obs.Result)).To(Equal(tc.wantResult))
				}
				g.Expect(sim.Polls("job-1")).To(Equal(1), "task-progresses must not count as a poll")
			})
		}
	}
}

func TestPollFollowsTheJobToTheEnd(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("job-2",
		vendorsim.Step{Phase: vendorsim.Running, Progress: 10, Message: "Allocate a host"},
		vendorsim.Step{Phase: vendorsim.Running, Progress: 60, Message: "Start the VM"},
		vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"inventory": {"uuid": "vm-2"}}`},
	)
	b := newBackend(t, url, loginCreds)
	var seen []int32
	for range 3 {
		obs, err := b.Poll(context.Background(), "job-2")
		g.Expect(err).NotTo(HaveOccurred())
		if obs.Progress != nil {
			seen = append(seen, *obs.Progress)
			g.Expect(obs.StartTime).NotTo(BeNil())
		}
		if obs.Phase == v1alpha1.TaskPhaseSucceeded {
			g.Expect(string(obs.Result)).To(Equal(`{"inventory":{"uuid":"vm-2"}}`))
		}
	}
	g.Expect(seen).To(Equal([]int32{10, 60}))
	g.Expect(sim.Polls("job-2")).To(Equal(3))
	g.Expect(sim.Logins(vendor)).To(Equal(1), "one login serves every poll")
}

func TestUnknownJobIsNotFound(t *testing.T) {
	g := NewWithT(t)
	_, url := backendtest.StartSim(t)
	_, err := newBackend(t, url, loginCreds).Poll(context.Background(), "never-started")
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindNotFound))
	g.Expect(err.Error()).To(ContainSubstring("the job has been expired"))
}

func TestExpiredSessionLogsInOnceAgain(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("job-3", vendorsim.Step{Phase: vendorsim.Running, Progress: 5, Message: "x"})
	b := newBackend(t, url, loginCreds)
	for range 3 {
		_, err := b.Poll(context.Background(), "job-3")
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(sim.Logins(vendor)).To(Equal(1))

	sim.ExpireSessions()
	obs, err := b.Poll(context.Background(), "job-3")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Progress).To(HaveValue(BeEquivalentTo(5)))
	g.Expect(sim.Logins(vendor)).To(Equal(2))
}

func TestConcurrentPollsAfterExpiryLogInOnce(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, loginCreds)
	const pollers = 16
	for i := range pollers {
		sim.AddTask(taskName(i), vendorsim.Step{Phase: vendorsim.Running, Progress: i})
	}
	g.Expect(b.Check(context.Background())).To(Succeed())
	g.Expect(sim.Logins(vendor)).To(Equal(1))

	sim.ExpireSessions()
	var wg sync.WaitGroup
	var failures atomic.Int32
	start := make(chan struct{})
	for i := range pollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := b.Poll(context.Background(), taskName(i)); err != nil {
				failures.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	g.Expect(failures.Load()).To(BeZero())
	g.Expect(sim.Logins(vendor)).To(Equal(2), "every poll that found the session expired shares one new login")
}

func taskName(i int) string { return "concurrent-" + string(rune('a'+i)) }

func TestWrongPasswordIsAuthenticationFailure(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("job-4", vendorsim.Step{Phase: vendorsim.Running})
	wrong := backend.Credentials{"accountName": []byte(backendtest.SimUser), "password": []byte("not-" + backendtest.SimPassword)}
	b := newBackend(t, url, wrong)
	for name, call := range map[string]func() error{
		"Poll":  func() error { _, err := b.Poll(context.Background(), "job-4"); return err },
		"Check": func() error { return b.Check(context.Background()) },
	} {
		err := call()
		g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication), name)
		g.Expect(err.Error()).To(ContainSubstring(`ZStack refused the login of account "sim-user"`), name)
		g.Expect(err.Error()).To(ContainSubstring("ID.1000"), name)
		g.Expect(err.Error()).NotTo(ContainSubstring("not-"+backendtest.SimPassword), name)
	}
	g.Expect(sim.Logins(vendor)).To(BeZero())
	g.Expect(sim.Polls("job-4")).To(BeZero())
}

func TestFixedSessionIDNeedsNoLogin(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("job-5", vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{}`})
	b := newBackend(t, url, sessionCreds)
	g.Expect(b.Check(context.Background())).To(Succeed())
	obs, err := b.Poll(context.Background(), "job-5")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	g.Expect(sim.Logins(vendor)).To(BeZero())
}

func TestRefusedSessionIDIsAuthenticationFailure(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("job-6", vendorsim.Step{Phase: vendorsim.Running})
	b := newBackend(t, url, backend.Credentials{"sessionID": []byte("stale-session-uuid")})
	for name, call := range map[string]func() error{
		"Poll":  func() error { _, err := b.Poll(context.Background(), "job-6"); return err },
		"Check": func() error { return b.Check(context.Background()) },
	} {
		err := call()
		g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication), name)
		g.Expect(err.Error()).To(ContainSubstring("ID.1001"), name)
		g.Expect(err.Error()).To(ContainSubstring("replace it"), name)
		g.Expect(err.Error()).NotTo(ContainSubstring("stale-session-uuid"), name)
	}
	g.Expect(sim.Logins(vendor)).To(BeZero())
}

// A server that issues sessions but refuses every one: the backend logs in again once per poll, then gives up.
func TestSessionRefusedAfterFreshLoginIsAuthenticationFailure(t *testing.T) {
	g := NewWithT(t)
	var logins, requests atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPut {
			logins.Add(1)
			_, _ = w.Write([]byte(`{"inventory": {"uuid": "session-that-never-works"}}`))
			return
		}
		requests.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error": {"code": "ID.1001", "description": "Invalid session"}}`))
	}))
	t.Cleanup(server.Close)
	_, err := newBackend(t, server.URL, loginCreds).Poll(context.Background(), "job-7")
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication))
	g.Expect(err.Error()).To(ContainSubstring("ZStack refused the session: ID.1001"))
	g.Expect(err.Error()).NotTo(ContainSubstring("session-that-never-works"))
	g.Expect(logins.Load()).To(BeEquivalentTo(2))
	g.Expect(requests.Load()).To(BeEquivalentTo(2))
}

func TestCheck(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	g.Expect(newBackend(t, url, loginCreds).Check(context.Background())).To(Succeed())
	g.Expect(sim.Logins(vendor)).To(Equal(1))
	g.Expect(newBackend(t, url, sessionCreds).Check(context.Background())).To(Succeed())

	server := httptest.NewServer(http.NotFoundHandler())
	server.Close()
	err := newBackend(t, server.URL, sessionCreds).Check(context.Background())
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindTransient))
}

func TestNewNeedsACompleteCredentialSet(t *testing.T) {
	cases := map[string]backend.Credentials{
		"no keys":           {},
		"account only":      {"accountName": []byte("admin")},
		"password only":     {"password": []byte("x")},
		"empty session ID":  {"sessionID": []byte("")},
		"unrelated api key": {"token": []byte("x")},
	}
	for name, creds := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := zstack.New(backend.Config{
				Spec:        v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack, URL: "http://zstack.example.com:8080"},
				Credentials: creds,
				Client:      backend.NewClient(backend.ClientOptions{Timeout: time.Second, QPS: 1, Burst: 1}),
			})
			g.Expect(backend.KindOf(err)).To(Equal(backend.KindInvalidConfig))
			g.Expect(err.Error()).To(Equal("credentials Secret must hold accountName + password, or sessionID"))
		})
	}
}

func TestBaseURLMayEndInZStackPath(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("job-8", vendorsim.Step{Phase: vendorsim.Succeeded})
	for _, suffix := range []string{"/", "/zstack", "/zstack/v1/"} {
		obs, err := newBackend(t, url+suffix, sessionCreds).Poll(context.Background(), "job-8")
		g.Expect(err).NotTo(HaveOccurred(), suffix)
		g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded), suffix)
	}
}

func TestTaskIDIsOnePathSegment(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("a/b", vendorsim.Step{Phase: vendorsim.Succeeded})
	obs, err := newBackend(t, url, sessionCreds).Poll(context.Background(), "a/b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	g.Expect(strings.Contains(obs.VendorStatus, "/")).To(BeFalse())
}

func ptrInt32(v int32) *int32 { return &v }

func TestHostileTaskIDsNeverLeaveTheTaskPath(t *testing.T) {
	rec := backendtest.NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		// A finished job: no progress request follows, so each poll is one request.
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"inventory":{}}`))
	})
	b := newBackend(t, rec.URL, sessionCreds)
	backendtest.ExpectHostileIDsKeptInTheirSegment(t, rec, "taskID",
		func(id string) error { _, err := b.Poll(context.Background(), id); return err },
		func(h backendtest.HostileTaskID) []string { return []string{"GET /zstack/v1/api-jobs/" + h.Segment} })
}

func TestHostileTaskIDsNeverLeaveTheProgressPath(t *testing.T) {
	rec := backendtest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/zstack/v1/api-jobs/") {
			w.WriteHeader(http.StatusAccepted) // running: the progress is asked next
			_, _ = w.Write([]byte(`{}`))
			return
		}
		_, _ = w.Write([]byte(`{"inventories":[]}`))
	})
	b := newBackend(t, rec.URL, sessionCreds)
	backendtest.ExpectHostileIDsKeptInTheirSegment(t, rec, "taskID",
		func(id string) error { _, err := b.Poll(context.Background(), id); return err },
		func(h backendtest.HostileTaskID) []string {
			return []string{
				"GET /zstack/v1/api-jobs/" + h.Segment,
				"GET /zstack/v1/task-progresses/" + h.Segment + "?all=false",
			}
		})
}
