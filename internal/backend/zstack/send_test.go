package zstack_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// createVM is an asynchronous API call (CreateVmInstance) with the job's UUID chosen by the caller.
func createVM(jobUUID string) backend.StartRequest {
	return backend.StartRequest{Method: http.MethodPost, Path: "/zstack/v1/vm-instances",
		Header: http.Header{"Content-Type": {"application/json"}, "X-Job-Uuid": {jobUUID}},
		Body:   []byte(`{"params":{"name":"vm1","instanceOfferingUuid":"33ef6b7c4a7c4bd0b6a4e3a2f4b0d2a1","imageUuid":"a7e2e0a4d4c84d6f9c5b2f7f1e0d3c2b","l3NetworkUuids":["6572ce44c3f6422d8063b0fb262cbc62"]}}`)}
}

func TestSendStartsAnAPIJobThatPollsTrack(t *testing.T) {
	for name, creds := range map[string]backend.Credentials{"login": loginCreds, "sessionID": sessionCreds} {
		t.Run(name, func(t *testing.T) {
			sim, url := backendtest.StartSim(t)
			// spec.url may end in /zstack: the documented path is appended to the same base as polls'.
			b := newBackend(t, url+"/zstack", creds)
			uuid := strings.Repeat("5a", 16)
			resp, written, err := backendtest.Send(t, b, createVM(uuid))
			if err != nil || resp.StatusCode != http.StatusAccepted || !written {
				t.Fatalf("Send: %v, %+v, written %v", err, resp, written)
			}
			recs := sim.StartRecords(vendorsim.ZStackAsyncAPI)
			if len(recs) != 1 || recs[0].Path != "/zstack/v1/vm-instances" || !bytes.Equal(recs[0].Body, createVM(uuid).Body) ||
				recs[0].Key != uuid || recs[0].JobID != uuid || !strings.HasPrefix(recs[0].Header.Get("Authorization"), "OAuth ") {
				t.Fatalf("the vendor got %+v", recs)
			}
			obs, err := b.Poll(t.Context(), uuid)
			if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning {
				t.Errorf("Poll of the started job: %v, %+v", err, obs)
			}
		})
	}
}

func TestSendResendsTheBodyAndJobUUIDUnchangedAfterARenewedSession(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, loginCreds)
	if err := b.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	sim.ExpireSessions()
	uuid := strings.Repeat("6b", 16)
	resp, _, err := backendtest.Send(t, b, createVM(uuid))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Send after expiry: %v, %+v", err, resp)
	}
	recs := sim.StartRecords(vendorsim.ZStackAsyncAPI)
	if len(recs) != 2 || recs[0].Status != http.StatusServiceUnavailable || recs[1].Status != http.StatusAccepted {
		t.Fatalf("requests: %+v", recs)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Body, createVM(uuid).Body) || r.Key != uuid {
			t.Errorf("request %q with job UUID %q, want both unchanged", r.Body, r.Key)
		}
	}
	if sim.Logins("ZStack") != 2 || sim.KeyJobs(uuid) != 1 {
		t.Errorf("logins %d, jobs %d; want 2 and 1", sim.Logins("ZStack"), sim.KeyJobs(uuid))
	}
}

func TestSendReturnsEveryAnswerForTheCallerToClassify(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, sessionCreds)
	for _, status := range []int{400, 500, 503} {
		sim.InjectStartFaults(vendorsim.ZStackAsyncAPI, 1, vendorsim.Fault{Status: status})
		resp, written, err := backendtest.Send(t, b, createVM(strings.Repeat("7c", 16)))
		if err != nil || resp.StatusCode != status || !written {
			t.Errorf("HTTP %d: %v, %+v", status, err, resp)
		}
	}
	// A repeated job UUID: ZStack's plain-text refusal, for the caller to read.
	uuid := strings.Repeat("8d", 16)
	for range 2 {
		if _, _, err := backendtest.Send(t, b, createVM(uuid)); err != nil {
			t.Fatal(err)
		}
	}
	recs := sim.StartRecords(vendorsim.ZStackAsyncAPI)
	if last := recs[len(recs)-1]; last.Status != http.StatusBadRequest {
		t.Errorf("repeated UUID answered %d", last.Status)
	}
}

func TestSendWithARefusedSessionIsAnAuthenticationError(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, backend.Credentials{"sessionID": []byte("expired-Secret!")})
	_, _, err := backendtest.Send(t, b, createVM(strings.Repeat("9e", 16)))
	if backend.KindOf(err) != backend.KindAuthentication || !strings.Contains(err.Error(), "sessionID") {
		t.Fatalf("got %v, want an authentication error that says what to do", err)
	}
	backendtest.ExpectNoSecret(NewWithT(t), err.Error(), "expired-Secret!")
	if sim.JobsCreated("") != 0 {
		t.Error("a refused request created a job")
	}
}
