package networkinsight

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// dottedID is shaped like the request IDs that the save call hands out: they contain dots.
const dottedID = "TASK_PROGRESS_application.APP_BULK_SAVE.1641321499579.0.04202820074723557"

func newBackend(t *testing.T, url string, creds backend.Credentials, settings *v1alpha1.NetworkInsightSettings) backend.Backend {
	t.Helper()
	return backendtest.NewBackend(t, New, v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight, URL: url, NetworkInsight: settings}, creds)
}

func loginCreds(password string) backend.Credentials {
	return backend.Credentials{"username": []byte(backendtest.SimUser), "password": []byte(password)}
}

func tokenCreds(token string) backend.Credentials {
	return backend.Credentials{"token": []byte(token)}
}

func TestPollFollowsTheTaskWithEachCredentialMethod(t *testing.T) {
	cases := map[string]struct {
		creds      backend.Credentials
		settings   *v1alpha1.NetworkInsightSettings
		wantLogins int
	}{
		"token login, LOCAL domain by default": {creds: loginCreds(backendtest.SimPassword), wantLogins: 1},
		"token login, LOCAL domain": {creds: loginCreds(backendtest.SimPassword), wantLogins: 1,
			settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLocal}},
		"token login, LDAP domain": {creds: loginCreds(backendtest.SimPassword), wantLogins: 1,
			settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP, Domain: vendorsim.NetworkInsightLDAPDomain}},
		"fixed token": {creds: tokenCreds(backendtest.SimToken), wantLogins: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask(dottedID,
				vendorsim.Step{Phase: vendorsim.Pending},
				vendorsim.Step{Phase: vendorsim.Running, Progress: 40},
				vendorsim.Step{Phase: vendorsim.Succeeded, Result: `[{"entityId":"1","name":"web","responseCode":"SUCCESS"},{"entityId":"2","name":"db","responseCode":"ALREADY_SAVED_APPLICATION","errorMessage":"Application db is already saved."}]`},
			)
			b := newBackend(t, url, tc.creds, tc.settings)
			ctx := context.Background()

			obs, err := b.Poll(ctx, dottedID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
			g.Expect(obs.VendorStatus).To(Equal("NOT_STARTED"))
			g.Expect(obs.TaskName).To(Equal("APP_BULK_SAVE"))
			g.Expect(obs.StartTime).NotTo(BeNil())

			obs, err = b.Poll(ctx, dottedID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
			g.Expect(obs.Progress).To(HaveValue(BeEquivalentTo(40)))

			obs, err = b.Poll(ctx, dottedID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
			g.Expect(obs.VendorStatus).To(Equal("FINISHED"))
			g.Expect(obs.Message).To(Equal("1 of 2 applications failed to save: db (ALREADY_SAVED_APPLICATION): Application db is already saved."))
			var result []map[string]string
			g.Expect(json.Unmarshal(obs.Result, &result)).To(Succeed())
			g.Expect(result).To(HaveLen(2))

			g.Expect(sim.Polls(dottedID)).To(Equal(3))
			g.Expect(sim.Logins("NetworkInsight")).To(Equal(tc.wantLogins), "one login per backend, never per poll")
			g.Expect(b.Check(ctx)).To(Succeed())
			g.Expect(sim.Logins("NetworkInsight")).To(Equal(tc.wantLogins), "Check reuses the session")
		})
	}
}

func TestFailedTaskIsReportedWithTheVendorMessage(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask(dottedID, vendorsim.Step{Phase: vendorsim.Failed, Message: "NSX manager unreachable"})
	obs, err := newBackend(t, url, tokenCreds(backendtest.SimToken), nil).Poll(context.Background(), dottedID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
	g.Expect(obs.VendorStatus).To(Equal("FAILED"))
	g.Expect(obs.Message).To(Equal("ERROR: NSX manager unreachable"))
}

func TestSimulatedErrorAnswersAreClassified(t *testing.T) {
	cases := map[string]struct {
		step     vendorsim.Step
		wantKind backend.ErrorKind
		wantMsg  string
	}{
		"500": {step: vendorsim.Step{HTTPStatus: 500}, wantKind: backend.KindTransient,
			wantMsg: "vendor answered HTTP 500: Internal error (code 500)"},
		"503 with Retry-After": {step: vendorsim.Step{HTTPStatus: 503, RetryAfter: 2}, wantKind: backend.KindTransient,
			wantMsg: "vendor answered HTTP 503: Service unavailable (code 503)"},
		"404 for the task": {step: vendorsim.Step{HTTPStatus: 404}, wantKind: backend.KindNotFound,
			wantMsg: "vendor answered HTTP 404: Request id not found (code 404); No task progress for request id " + dottedID + " [requestId]"},
		"a body that is not JSON": {step: vendorsim.Step{RawBody: "<html>maintenance</html>"}, wantKind: backend.KindTransient,
			wantMsg: "not the documented shape (not a JSON task progress object)"},
		"a JSON body of the wrong shape": {step: vendorsim.Step{RawBody: `{"result":"ok"}`}, wantKind: backend.KindTransient,
			wantMsg: "neither status nor progress"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask(dottedID, tc.step)
			_, err := newBackend(t, url, tokenCreds(backendtest.SimToken), nil).Poll(context.Background(), dottedID)
			g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
			g.Expect(err.Error()).To(ContainSubstring(tc.wantMsg))
			if tc.step.RetryAfter > 0 {
				e, _ := backend.AsError(err)
				g.Expect(e.RetryAfter).To(Equal(time.Duration(tc.step.RetryAfter) * time.Second))
			}
		})
	}
}

func TestUnknownRequestIDIsNotFound(t *testing.T) {
	g := NewWithT(t)
	_, url := backendtest.StartSim(t)
	_, err := newBackend(t, url, loginCreds(backendtest.SimPassword), nil).Poll(context.Background(), "TASK_PROGRESS_application.APP_BULK_SAVE.1.0.1")
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindNotFound))
	g.Expect(err.Error()).To(ContainSubstring("Request id not found (code 404)"))
}

func TestExpiredTokenCausesExactlyOneLoginAgain(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	sim.AddTask(dottedID, vendorsim.Step{Phase: vendorsim.Running, Progress: 10})
	b := newBackend(t, url, loginCreds(backendtest.SimPassword), nil)
	ctx := context.Background()

	_, err := b.Poll(ctx, dottedID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sim.Logins("NetworkInsight")).To(Equal(1))

	sim.ExpireSessions()
	obs, err := b.Poll(ctx, dottedID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Progress).To(HaveValue(BeEquivalentTo(10)))
	g.Expect(sim.Logins("NetworkInsight")).To(Equal(2))

	_, err = b.Poll(ctx, dottedID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sim.Logins("NetworkInsight")).To(Equal(2), "the new token is reused")
}

func TestConcurrentPollsAfterExpiryLogInOnce(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	const tasks = 16
	ids := make([]string, tasks)
	for i := range ids {
		ids[i] = dottedID + "." + string(rune('a'+i))
		sim.AddTask(ids[i], vendorsim.Step{Phase: vendorsim.Running, Progress: i})
	}
	b := newBackend(t, url, loginCreds(backendtest.SimPassword), nil)
	ctx := context.Background()
	_, err := b.Poll(ctx, ids[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sim.Logins("NetworkInsight")).To(Equal(1))

	sim.ExpireSessions()
	var wg sync.WaitGroup
	errs := make(chan error, tasks)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Poll(ctx, id); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("poll after expiry: %v", err)
	}
	g.Expect(sim.Logins("NetworkInsight")).To(Equal(2))
}

func TestWrongCredentialsAreAnAuthenticationError(t *testing.T) {
	cases := map[string]struct {
		creds      backend.Credentials
		settings   *v1alpha1.NetworkInsightSettings
		wantMsg    string
		wantLogins int
	}{
		"wrong password": {creds: loginCreds("not-the-password"),
			wantMsg: "Network Insight refused the login (HTTP 401)"},
		"unknown LDAP domain": {creds: loginCreds(backendtest.SimPassword),
			settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP, Domain: "other.example"},
			wantMsg:  "Network Insight refused the login (HTTP 401)"},
		"wrong fixed token": {creds: tokenCreds("not-the-token"),
			wantMsg: "vendor answered HTTP 401: Authentication failed: token is invalid or expired (code 401)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			sim.AddTask(dottedID, vendorsim.Step{Phase: vendorsim.Running})
			b := newBackend(t, url, tc.creds, tc.settings)
			for _, call := range []func() error{
				func() error { _, err := b.Poll(context.Background(), dottedID); return err },
				func() error { return b.Check(context.Background()) },
			} {
				err := call()
				g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication))
				g.Expect(err.Error()).To(ContainSubstring(tc.wantMsg))
				backendtest.ExpectNoSecret(g, err.Error(), tc.creds.Get("password"), tc.creds.Get("token"))
			}
			g.Expect(sim.Polls(dottedID)).To(BeZero())
		})
	}
}

func TestFixedTokenRefusedIsNotResent(t *testing.T) {
	g := NewWithT(t)
	var requests int
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":401,"message":"Token expired"}`)
	}))
	t.Cleanup(server.Close)
	_, err := newBackend(t, server.URL, tokenCreds("tok"), nil).Poll(context.Background(), dottedID)
	g.Expect(backend.KindOf(err)).To(Equal(backend.KindAuthentication))
	g.Expect(requests).To(Equal(1), "a fixed token cannot be renewed, so it is not sent twice")
}

func TestRequestsAreTheDocumentedOnes(t *testing.T) {
	cases := map[string]struct {
		settings  *v1alpha1.NetworkInsightSettings
		wantLogin string
	}{
		"LOCAL": {wantLogin: `{"username":"sim-user","password":"p\"w","domain":{"domain_type":"LOCAL"}}`},
		"LDAP": {settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP, Domain: "corp.example.com"},
			wantLogin: `{"username":"sim-user","password":"p\"w","domain":{"domain_type":"LDAP","value":"corp.example.com"}}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			var mu sync.Mutex
			var seen []string
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				seen = append(seen, r.Method+" "+r.URL.EscapedPath()+" "+r.Header.Get("Authorization")+" "+r.Header.Get("Content-Type")+" "+string(body))
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == "/base/api/ni/auth/token" {
					_, _ = io.WriteString(w, `{"token":"Gw9Gzq+eNJRRnYc2ZFXfDA==","expiry":4102444800000}`)
					return
				}
				_, _ = io.WriteString(w, `{"status":"IN_PROGRESS","progress":1}`)
			}))
			t.Cleanup(server.Close)
			creds := backend.Credentials{"username": []byte("sim-user"), "password": []byte(`p"w`)}
			b := newBackend(t, server.URL+"/base/", creds, tc.settings)
			// ".." is refused before anything is sent: TestHostileTaskIDsNeverLeaveTheTaskPath.
			for _, id := range []string{dottedID, "a/b?c#d", "100%"} {
				_, err := b.Poll(context.Background(), id)
				g.Expect(err).NotTo(HaveOccurred())
			}
			g.Expect(seen).To(Equal([]string{
				"POST /base/api/ni/auth/token  application/json " + tc.wantLogin,
				"GET /base/api/ni/groups/task/progress/" + dottedID + " NetworkInsight Gw9Gzq+eNJRRnYc2ZFXfDA==  ",
				"GET /base/api/ni/groups/task/progress/a%2Fb%3Fc%23d NetworkInsight Gw9Gzq+eNJRRnYc2ZFXfDA==  ",
				"GET /base/api/ni/groups/task/progress/100%25 NetworkInsight Gw9Gzq+eNJRRnYc2ZFXfDA==  ",
			}))
		})
	}
}

func TestSimulatorAnswersRequestIDsThatNeedEscaping(t *testing.T) {
	g := NewWithT(t)
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, tokenCreds(backendtest.SimToken), nil)
	for _, id := range []string{"with/slash", "with space", "q?x=1", "100%"} {
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running, Progress: 5})
		_, err := b.Poll(context.Background(), id)
		g.Expect(err).NotTo(HaveOccurred(), id)
		g.Expect(sim.Polls(id)).To(Equal(1), id)
	}
}

func TestCheck(t *testing.T) {
	cases := map[string]struct {
		creds      backend.Credentials
		wantLogins int
	}{
		"token login": {creds: loginCreds(backendtest.SimPassword), wantLogins: 1},
		"fixed token": {creds: tokenCreds(backendtest.SimToken)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			sim, url := backendtest.StartSim(t)
			g.Expect(newBackend(t, url, tc.creds, nil).Check(context.Background())).To(Succeed())
			g.Expect(sim.Logins("NetworkInsight")).To(Equal(tc.wantLogins))
			g.Expect(sim.Polls(checkRequestID)).To(BeZero())
		})
	}
}

func TestCheckAtAWrongURL(t *testing.T) {
	cases := map[string]struct {
		creds    backend.Credentials
		wantKind backend.ErrorKind
	}{
		"token login": {creds: loginCreds(backendtest.SimPassword), wantKind: backend.KindInvalidConfig},
		"fixed token": {creds: tokenCreds(backendtest.SimToken), wantKind: backend.KindTransient},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, "<html>404 page not found</html>")
			}))
			t.Cleanup(server.Close)
			err := newBackend(t, server.URL, tc.creds, nil).Check(context.Background())
			g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
			g.Expect(err.Error()).To(ContainSubstring("spec.url"))
		})
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	cases := map[string]struct {
		url      string
		creds    backend.Credentials
		settings *v1alpha1.NetworkInsightSettings
		wantMsg  string
	}{
		"no credentials": {url: "https://vrni.example.com", creds: backend.Credentials{},
			wantMsg: "credentials Secret must hold username + password, or token"},
		"username without password": {url: "https://vrni.example.com", creds: backend.Credentials{"username": []byte("u")},
			wantMsg: "credentials Secret must hold username + password, or token"},
		"LDAP without domain": {url: "https://vrni.example.com", creds: loginCreds("p"),
			settings: &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP},
			wantMsg:  "spec.networkInsight.domain is required when domainType is LDAP"},
		"unknown domain type": {url: "https://vrni.example.com", creds: loginCreds("p"),
			settings: &v1alpha1.NetworkInsightSettings{DomainType: "AD"},
			wantMsg:  `spec.networkInsight.domainType "AD" is not LOCAL or LDAP`},
		"not a URL": {url: "vrni.example.com", creds: tokenCreds("t"),
			wantMsg: `spec.url "vrni.example.com" is not an http or https URL`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := New(backend.Config{
				Spec:        v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight, URL: tc.url, NetworkInsight: tc.settings},
				Credentials: tc.creds,
				Client:      backend.NewClient(backend.ClientOptions{Timeout: time.Second, QPS: 1, Burst: 1}),
			})
			g.Expect(backend.KindOf(err)).To(Equal(backend.KindInvalidConfig))
			g.Expect(err.Error()).To(Equal(tc.wantMsg))
			g.Expect(strings.Contains(err.Error(), "p\"")).To(BeFalse())
		})
	}
}

func TestHostileTaskIDsNeverLeaveTheTaskPath(t *testing.T) {
	rec := backendtest.NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"IN_PROGRESS","progress":1}`)
	})
	b := newBackend(t, rec.URL+"/base/", tokenCreds(backendtest.SimToken), nil)
	backendtest.ExpectHostileIDsKeptInTheirSegment(t, rec, "taskID",
		func(id string) error { _, err := b.Poll(context.Background(), id); return err },
		func(h backendtest.HostileTaskID) []string {
			return []string{"GET /base/api/ni/groups/task/progress/" + h.Segment}
		})
}
