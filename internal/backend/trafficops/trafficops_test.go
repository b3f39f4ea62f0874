package trafficops

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

const vendor = "TrafficOps"

var (
	passwordCreds = backend.Credentials{"username": []byte(backendtest.SimUser), "password": []byte(backendtest.SimPassword)}
	tokenCreds    = backend.Credentials{"token": []byte(backendtest.SimToken)}
	credMethods   = map[string]backend.Credentials{"cookie login": passwordCreds, "token login": tokenCreds}
)

func newBackend(t *testing.T, url string, creds backend.Credentials, settings *v1alpha1.TrafficOpsSettings) backend.Backend {
	t.Helper()
	return backendtest.NewBackend(t, New, v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, URL: url, TrafficOps: settings}, creds)
}

func TestPollFollowsTheJobWithEitherLogin(t *testing.T) {
	for method, creds := range credMethods {
		t.Run(method, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask("41",
				vendorsim.Step{Phase: vendorsim.Pending},
				vendorsim.Step{Phase: vendorsim.Running, Message: "Renewing certificates"},
				vendorsim.Step{Phase: vendorsim.Succeeded, Message: "ACME renewal complete."},
			)
			b := newBackend(t, url, creds, nil)
			ctx := context.Background()

			obs, err := b.Poll(ctx, "41")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
			g.Expect(obs.VendorStatus).To(Equal("PENDING"))
			g.Expect(obs.Message).To(Equal("Async job has started."))
			g.Expect(obs.StartTime).NotTo(BeNil())
			g.Expect(obs.CompletionTime).To(BeNil(), "end_time is null while pending")
			g.Expect(obs.Progress).To(BeNil())

			obs, err = b.Poll(ctx, "41")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Message).To(Equal("Renewing certificates"))

			obs, err = b.Poll(ctx, "41")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
			g.Expect(obs.VendorStatus).To(Equal("SUCCEEDED"))
			g.Expect(obs.Message).To(Equal("ACME renewal complete."))
			g.Expect(obs.CompletionTime).NotTo(BeNil())
			g.Expect(*obs.CompletionTime).NotTo(BeTemporally("<", *obs.StartTime))

			g.Expect(sim.Logins(vendor)).To(Equal(1), "one login serves every poll")
		})
	}
}

func TestPollMapsEveryStatusWord(t *testing.T) {
	cases := map[string]struct {
		step   vendorsim.Step
		phase  v1alpha1.TaskPhase
		status string
	}{
		"pending":   {step: vendorsim.Step{Phase: vendorsim.Pending}, phase: v1alpha1.TaskPhaseRunning, status: "PENDING"},
		"succeeded": {step: vendorsim.Step{Phase: vendorsim.Succeeded}, phase: v1alpha1.TaskPhaseSucceeded, status: "SUCCEEDED"},
		"failed": {step: vendorsim.Step{Phase: vendorsim.Failed, Message: "ACME renewal failed"},
			phase: v1alpha1.TaskPhaseFailed, status: "FAILED"},
		"unknown word": {step: vendorsim.Step{RawBody: `{"response":{"id":7,"status":"PAUSED","start_time":"2021-02-18T17:13:56.352261Z","message":"m"}}`},
			phase: v1alpha1.TaskPhaseRunning, status: "PAUSED"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask("7", tc.step)
			obs, err := newBackend(t, url, passwordCreds, nil).Poll(context.Background(), "7")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(tc.phase))
			g.Expect(obs.VendorStatus).To(Equal(tc.status))
			g.Expect(obs.UnknownStatus).To(Equal(tc.status == "PAUSED"))
		})
	}
}

func TestPollClassifiesDocumentedErrors(t *testing.T) {
	cases := map[string]struct {
		id         string
		step       *vendorsim.Step
		kind       backend.ErrorKind
		message    string
		retryAfter time.Duration
	}{
		"unknown id": {id: "999", kind: backend.KindNotFound, message: "vendor answered HTTP 404: Not Found"},
		"id the server finds not an integer": {id: "1", step: &vendorsim.Step{HTTPStatus: 400},
			kind: backend.KindTerminal, message: "vendor answered HTTP 400: id must be an integer"},
		"id that is not an integer, refused before asking": {id: "abc",
			kind: backend.KindTerminal, message: `Traffic Ops job IDs are integers; task ID "abc" is not`},
		"id with a path in it": {id: "1/../../user/login",
			kind: backend.KindTerminal, message: "Traffic Ops job IDs are integers"},
		"missing permission": {id: "1", step: &vendorsim.Step{HTTPStatus: 403},
			kind: backend.KindAuthentication, message: "vendor answered HTTP 403: missing required Permissions: ASYNC-STATUS:READ"},
		"server error": {id: "1", step: &vendorsim.Step{HTTPStatus: 500},
			kind: backend.KindTransient, message: "vendor answered HTTP 500: Internal Server Error"},
		"rate limited": {id: "1", step: &vendorsim.Step{HTTPStatus: 429, RetryAfter: 3},
			kind: backend.KindTransient, message: "vendor answered HTTP 429: Too Many Requests", retryAfter: 3 * time.Second},
		"not JSON": {id: "1", step: &vendorsim.Step{RawBody: "<html>maintenance</html>"},
			kind: backend.KindTransient, message: `(not JSON): "<html>maintenance</html>"`},
		"JSON of another shape": {id: "1", step: &vendorsim.Step{RawBody: `{"status":"PENDING"}`},
			kind: backend.KindTransient, message: "(no response object)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			if tc.step != nil {
				sim.AddTask(tc.id, *tc.step)
			}
			_, err := newBackend(t, url, passwordCreds, nil).Poll(context.Background(), tc.id)
			e, ok := backend.AsError(err)
			g.Expect(ok).To(BeTrue(), "error %v is a *backend.Error", err)
			g.Expect(e.Kind).To(Equal(tc.kind))
			g.Expect(e.Message).To(ContainSubstring(tc.message))
			g.Expect(e.RetryAfter).To(Equal(tc.retryAfter))
			backendtest.ExpectNoSecret(g, err.Error())
		})
	}
}

func TestExpiredSessionLogsInAgainOnce(t *testing.T) {
	for method, creds := range credMethods {
		t.Run(method, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask("5", vendorsim.Step{Phase: vendorsim.Running})
			b := newBackend(t, url, creds, nil)
			ctx := context.Background()
			_, err := b.Poll(ctx, "5")
			g.Expect(err).NotTo(HaveOccurred())

			sim.ExpireSessions()
			_, err = b.Poll(ctx, "5")
			g.Expect(err).NotTo(HaveOccurred())
			_, err = b.Poll(ctx, "5")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sim.Logins(vendor)).To(Equal(2))
		})
	}
}

func TestConcurrentPollsAfterExpiryLogInOnce(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, passwordCreds, nil)
	ids := []string{"11", "12", "13", "14", "15", "16", "17", "18"}
	for _, id := range ids {
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running})
	}
	ctx := context.Background()
	_, err := b.Poll(ctx, ids[0])
	g.Expect(err).NotTo(HaveOccurred())

	sim.ExpireSessions()
	var wg sync.WaitGroup
	errs := make(chan error, len(ids)*4)
	for range 4 {
		for _, id := range ids {
			wg.Go(func() {
				_, err := b.Poll(ctx, id)
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(sim.Logins(vendor)).To(Equal(2))
}

func TestRefusedLoginIsAnAuthenticationError(t *testing.T) {
	cases := map[string]struct {
		creds   backend.Credentials
		message string
	}{
		"wrong password": {
			creds:   backend.Credentials{"username": []byte(backendtest.SimUser), "password": []byte("wrong-" + backendtest.SimPassword)},
			message: `Traffic Ops login as user "sim-user" failed: HTTP 401: Invalid username or password.`,
		},
		"wrong token": {
			creds:   backend.Credentials{"token": []byte("wrong-" + backendtest.SimToken)},
			message: "Traffic Ops token login failed: HTTP 401: Invalid token. Please contact your administrator.",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask("3", vendorsim.Step{Phase: vendorsim.Running})
			b := newBackend(t, url, tc.creds, nil)

			_, err := b.Poll(context.Background(), "3")
			g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication))
			g.Expect(err.Error()).To(Equal(tc.message))
			backendtest.ExpectNoSecret(g, err.Error())

			err = b.Check(context.Background())
			g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication))
			g.Expect(sim.Polls("3")).To(BeZero())
			g.Expect(sim.Logins(vendor)).To(BeZero())
		})
	}
}

func TestSessionRefusedAfterReloginIsAnAuthenticationError(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask("8", vendorsim.Step{HTTPStatus: 401})
	_, err := newBackend(t, url, passwordCreds, nil).Poll(context.Background(), "8")
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication))
	g.Expect(err.Error()).To(Equal("vendor answered HTTP 401: unauthorized, please log in."))
	g.Expect(sim.Logins(vendor)).To(Equal(2), "one login, and one more after the 401")
}

func TestCheckLogsIn(t *testing.T) {
	for method, creds := range credMethods {
		t.Run(method, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask("9", vendorsim.Step{Phase: vendorsim.Running})
			b := newBackend(t, url, creds, &v1alpha1.TrafficOpsSettings{APIVersion: "4.1"})
			ctx := context.Background()

			g.Expect(b.Check(ctx)).To(Succeed())
			g.Expect(sim.Logins(vendor)).To(Equal(1))
			_, err := b.Poll(ctx, "9")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sim.Logins(vendor)).To(Equal(1), "the poll uses the session Check made")

			g.Expect(b.Check(ctx)).To(Succeed())
			g.Expect(sim.Logins(vendor)).To(Equal(2), "Check asks the vendor even when a session is held")
			_, err = b.Poll(ctx, "9")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sim.Logins(vendor)).To(Equal(2))
		})
	}
}

func TestCheckOfAWrongURLSaysWhatToFix(t *testing.T) {
	g := NewWithT(t)
	_, url := backendtest.StartSim(t)
	err := newBackend(t, url+"/not-traffic-ops", passwordCreds, nil).Check(context.Background())
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindInvalidConfig))
	g.Expect(err.Error()).To(ContainSubstring("HTTP 404"))
	g.Expect(err.Error()).To(ContainSubstring("check spec.url and spec.trafficOps.apiVersion"))
}

func TestCheckOfAnUnreachableServerIsTransient(t *testing.T) {
	g := NewWithT(t)
	server := httptest.NewServer(nil)
	url := server.URL
	server.Close()
	err := newBackend(t, url, tokenCreds, nil).Check(context.Background())
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindTransient))
	backendtest.ExpectNoSecret(g, err.Error())
}

func TestNewRejectsUnusableConfig(t *testing.T) {
	cases := map[string]struct {
		creds    backend.Credentials
		settings *v1alpha1.TrafficOpsSettings
		message  string
	}{
		"no credentials": {creds: backend.Credentials{},
			message: "credentials Secret must hold username + password, or token"},
		"username without password": {creds: backend.Credentials{"username": []byte("u")},
			message: "credentials Secret must hold username + password, or token"},
		"version not a version": {creds: tokenCreds, settings: &v1alpha1.TrafficOpsSettings{APIVersion: "v5"},
			message: `spec.trafficOps.apiVersion "v5" is not a version like "5.0"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := New(backend.Config{
				Spec:        v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, URL: "https://to.example", TrafficOps: tc.settings},
				Credentials: tc.creds,
				Client:      backend.NewClient(backend.ClientOptions{Timeout: time.Second, QPS: 1, Burst: 1}),
			})
			g.Expect(backend.KindOf(err)).To(Equal(backend.KindInvalidConfig))
			g.Expect(err.Error()).To(Equal(tc.message))
		})
	}
}

func TestHostileTaskIDsAreRefusedBeforeAnythingIsSent(t *testing.T) {
	g := NewWithT(t)
	rec := backendtest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			http.SetCookie(w, &http.Cookie{Name: "mojolicious", Value: "session"})
			_, _ = w.Write([]byte(`{"alerts":[{"text":"Successfully logged in.","level":"success"}]}`))
			return
		}
		_, _ = w.Write([]byte(`{"response":{"id":42,"status":"PENDING","start_time":"2021-02-18T17:13:56.352261Z","message":"Async job has started."}}`))
	})
	b := newBackend(t, rec.URL+"/base/", tokenCreds, nil)
	for _, h := range backendtest.HostileTaskIDs {
		// Not one of them is an integer, the only documented form of a job ID.
		_, err := b.Poll(context.Background(), h.ID)
		g.Expect(backend.KindOf(err)).To(Equal(backend.KindTerminal), h.ID)
		g.Expect(err.Error()).To(Equal(fmt.Sprintf("Traffic Ops job IDs are integers; task ID %q is not", h.ID)))
		g.Expect(rec.Take()).To(BeEmpty(), "nothing is sent for %q, not even a login", h.ID)
	}
	_, err := b.Poll(context.Background(), "42")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rec.Take()).To(Equal([]string{"POST /base/api/5.0/user/login/token", "GET /base/api/5.0/async_status/42"}))
}
