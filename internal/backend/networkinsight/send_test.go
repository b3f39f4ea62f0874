package networkinsight

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

var _ backend.Sender = (*networkInsight)(nil)

// saveRequest is the documented example of POST /api/ni/groups/discovered-applications/save.
func saveRequest() backend.StartRequest {
	return backend.StartRequest{Method: http.MethodPost, Path: "/api/ni/groups/discovered-applications/save",
		Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Tag": {"t1"}},
		Body:   []byte(`{"discovered_apps":[{"source_entity_id":"18203:565:2854896465419091802"},{"source_entity_id":"18203:565:3896568950496372144"}],"discovery_type":"FLOW_BASED_DISCOVERY","enable_threshold_analytics":false}`)}
}

func TestSendStartsABulkSaveThatPollsTrack(t *testing.T) {
	for name, creds := range map[string]backend.Credentials{"login": loginCreds(backendtest.SimPassword), "token": tokenCreds(backendtest.SimToken)} {
		t.Run(name, func(t *testing.T) {
			sim, url := backendtest.StartSim(t)
			b := newBackend(t, url, creds, nil)
			resp, written, err := backendtest.Send(t, b, saveRequest())
			if err != nil || resp.StatusCode != http.StatusOK || !written {
				t.Fatalf("Send: %v, %+v, written %v", err, resp, written)
			}
			var answer struct {
				RequestID string `json:"request_id"`
			}
			_ = json.Unmarshal(resp.Body, &answer)
			recs := sim.StartRecords(vendorsim.NetworkInsightSave)
			if len(recs) != 1 || !bytes.Equal(recs[0].Body, saveRequest().Body) || recs[0].Header.Get("X-Request-Tag") != "t1" ||
				recs[0].Header.Get("Content-Type") != "application/json" || recs[0].JobID != answer.RequestID {
				t.Fatalf("the vendor got %+v", recs)
			}
			obs, err := b.Poll(t.Context(), answer.RequestID)
			if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning {
				t.Errorf("Poll of the started job: %v, %+v", err, obs)
			}
		})
	}
}

func TestSendResendsTheBodyUnchangedAfterARenewedSession(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, loginCreds(backendtest.SimPassword), nil)
	if _, _, err := backendtest.Send(t, b, saveRequest()); err != nil {
		t.Fatal(err)
	}
	sim.ExpireSessions()
	resp, _, err := backendtest.Send(t, b, saveRequest())
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("Send after expiry: %v, %+v", err, resp)
	}
	recs := sim.StartRecords(vendorsim.NetworkInsightSave)
	if len(recs) != 3 || recs[1].Status != http.StatusUnauthorized || recs[2].Status != http.StatusOK {
		t.Fatalf("requests: %+v", recs)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Body, saveRequest().Body) {
			t.Errorf("body %q, want it unchanged", r.Body)
		}
	}
	if sim.Logins("NetworkInsight") != 2 || sim.JobsCreated(vendorsim.NetworkInsightSave) != 2 {
		t.Errorf("logins %d, jobs %d; want 2 and 2", sim.Logins("NetworkInsight"), sim.JobsCreated(vendorsim.NetworkInsightSave))
	}
}

func TestSendReturnsEveryAnswerForTheCallerToClassify(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, tokenCreds(backendtest.SimToken), nil)
	for _, status := range []int{400, 403, 429, 500, 503} {
		sim.InjectStartFaults(vendorsim.NetworkInsightSave, 1, vendorsim.Fault{Status: status})
		resp, written, err := backendtest.Send(t, b, saveRequest())
		if err != nil || resp.StatusCode != status || !written {
			t.Errorf("HTTP %d: %v, %+v", status, err, resp)
		}
	}
}

func TestSendWithRefusedCredentialsIsAnAuthenticationError(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	for name, creds := range map[string]backend.Credentials{"wrong password": loginCreds("wrong-Secret!"), "wrong token": tokenCreds("wrong-Secret!")} {
		t.Run(name, func(t *testing.T) {
			_, _, err := backendtest.Send(t, newBackend(t, url, creds, nil), saveRequest())
			if backend.KindOf(err) != backend.KindAuthentication {
				t.Fatalf("got %v, want an authentication error", err)
			}
			backendtest.ExpectNoSecret(NewWithT(t), err.Error(), "wrong-Secret!")
		})
	}
	if sim.JobsCreated("") != 0 {
		t.Error("a refused request created a job")
	}
}
