package httpcel

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

var _ backend.Sender = (*httpBackend)(nil)

// genericJobsSpec polls the simulator's generic job API.
func genericJobsSpec(url string) v1alpha1.TaskBackendSpec {
	return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP, URL: url, HTTP: &v1alpha1.HTTPSettings{
		Path:    "/generic/v1/jobs/{taskID}",
		Headers: map[string]string{"X-Poll-Only": "yes"},
		Expressions: v1alpha1.HTTPExpressions{
			Phase: `{'queued': 'Pending', 'running': 'Running', 'succeeded': 'Succeeded', 'failed': 'Failed'}[response.body.status]`,
		},
	}}
}

func jobRequest(key string) backend.StartRequest {
	return backend.StartRequest{Method: http.MethodPost, Path: "/generic/v1/queues/reports/jobs",
		Header: http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key}},
		Body:   []byte(`{"name":"report","size":3}`)}
}

func TestSendStartsAJobThatPollsTrack(t *testing.T) {
	for name, creds := range map[string]backend.Credentials{
		"Bearer": creds("token", backendtest.SimToken),
		"Basic":  creds("username", backendtest.SimUser, "password", backendtest.SimPassword),
	} {
		t.Run(name, func(t *testing.T) {
			sim, url := backendtest.StartSim(t)
			b := backendtest.NewBackend(t, New, genericJobsSpec(url), creds)
			resp, written, err := backendtest.Send(t, b, jobRequest("k1"))
			if err != nil || resp.StatusCode != http.StatusCreated || !written {
				t.Fatalf("Send: %v, %+v, written %v", err, resp, written)
			}
			var answer struct{ ID string }
			_ = json.Unmarshal(resp.Body, &answer)
			recs := sim.StartRecords("/generic/v1/queues/reports/jobs")
			if len(recs) != 1 || !bytes.Equal(recs[0].Body, jobRequest("k1").Body) || recs[0].Key != "k1" ||
				recs[0].Header.Get("Authorization") == "" || recs[0].Header.Get("X-Poll-Only") != "" || recs[0].JobID != answer.ID {
				t.Fatalf("the vendor got %+v", recs)
			}
			obs, err := b.Poll(t.Context(), answer.ID)
			if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning {
				t.Errorf("Poll of the started job: %v, %+v", err, obs)
			}
		})
	}
}

// TestSendThroughALoginResendsTheBodyUnchanged starts a ZStack job through the generic backend of
// config/samples/http_zstack.yaml, whose login session ZStack ends with 503 ID.1001.
func TestSendThroughALoginResendsTheBodyUnchanged(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	spec := loadSample(t, "http_zstack.yaml")
	spec.URL = url
	b := backendtest.NewBackend(t, New, spec, creds("username", backendtest.SimUser, "password", backendtest.SimPassword))
	uuid := strings.Repeat("3c", 16)
	req := backend.StartRequest{Method: http.MethodPost, Path: "/zstack/v1/vm-instances",
		Header: http.Header{"Content-Type": {"application/json"}, "X-Job-Uuid": {uuid}}, Body: []byte(`{"params":{"name":"vm1"}}`)}
	if err := b.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	sim.ExpireSessions()
	resp, _, err := backendtest.Send(t, b, req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Send after expiry: %v, %+v", err, resp)
	}
	recs := sim.StartRecords(vendorsim.ZStackAsyncAPI)
	if len(recs) != 2 || recs[0].Status != http.StatusServiceUnavailable || recs[1].Status != http.StatusAccepted {
		t.Fatalf("requests: %+v", recs)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Body, req.Body) || r.Key != uuid {
			t.Errorf("request %q with job UUID %q, want both unchanged", r.Body, r.Key)
		}
	}
	if got := sim.Logins("ZStack"); got != 2 {
		t.Errorf("logins = %d, want 2", got)
	}
}

func TestSendReturnsEveryAnswerForTheCallerToClassify(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := backendtest.NewBackend(t, New, genericJobsSpec(url), creds("token", backendtest.SimToken))
	for _, status := range []int{400, 401, 409, 422, 429, 500, 503} {
		sim.InjectStartFaults(vendorsim.HTTPJobs, 1, vendorsim.Fault{Status: status})
		resp, written, err := backendtest.Send(t, b, jobRequest("k-"+http.StatusText(status)))
		if err != nil || resp.StatusCode != status || !written {
			t.Errorf("HTTP %d: %v, %+v", status, err, resp)
		}
	}
}

func TestSendWhoseFreshSessionIsRefusedIsAnAuthenticationError(t *testing.T) {
	var logins, starts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			logins.Add(1)
			_, _ = io.WriteString(w, `{"token": "session-Secret!"}`)
			return
		}
		starts.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	spec := genericJobsSpec(srv.URL)
	spec.HTTP.Auth = &v1alpha1.HTTPAuth{Login: &v1alpha1.HTTPLogin{Path: "/login", Body: "{'user': credentials.username, 'password': credentials.password}", Token: "response.body.token"}}
	b := backendtest.NewBackend(t, New, spec, creds("username", "u", "password", "password-Secret!"))
	_, _, err := backendtest.Send(t, b, jobRequest("k1"))
	if backend.KindOf(err) != backend.KindAuthentication {
		t.Fatalf("got %v, want an authentication error", err)
	}
	backendtest.ExpectNoSecret(NewWithT(t), err.Error(), "session-Secret!", "password-Secret!")
	if logins.Load() != 2 || starts.Load() != 2 {
		t.Errorf("logins %d, starts %d; want 2 and 2 (one renewal)", logins.Load(), starts.Load())
	}
}
