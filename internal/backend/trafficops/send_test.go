package trafficops

import (
	"bytes"
	"net/http"
	"regexp"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

var _ backend.Sender = (*trafficOps)(nil)

// acmeRequest is the documented example of POST /api/5.0/deliveryservices/sslkeys/generate/acme.
func acmeRequest() backend.StartRequest {
	return backend.StartRequest{Method: http.MethodPost, Path: "/api/5.0/deliveryservices/sslkeys/generate/acme",
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   []byte(`{"authType":"Lets Encrypt","key":"ds-01","deliveryservice":"ds-01","version":"3","hostname":"tr.ds-01.ott.kabletown.com","cdn":"test-cdn"}`)}
}

var asyncStatusID = regexp.MustCompile(`/async_status/([0-9]+)$`)

func TestSendStartsAnACMEJobThatPollsTrack(t *testing.T) {
	for method, creds := range credMethods {
		t.Run(method, func(t *testing.T) {
			sim, url := backendtest.StartSim(t)
			b := newBackend(t, url, creds, nil)
			resp, written, err := backendtest.Send(t, b, acmeRequest())
			if err != nil || resp.StatusCode != http.StatusAccepted || !written {
				t.Fatalf("Send: %v, %+v, written %v", err, resp, written)
			}
			m := asyncStatusID.FindStringSubmatch(resp.Header.Get("Location"))
			if m == nil {
				t.Fatalf("Location %q names no async status", resp.Header.Get("Location"))
			}
			recs := sim.StartRecords(vendorsim.TrafficOpsACME)
			if len(recs) != 1 || !bytes.Equal(recs[0].Body, acmeRequest().Body) || recs[0].JobID != m[1] {
				t.Fatalf("the vendor got %+v", recs)
			}
			if recs[0].Header.Get("Cookie") == "" {
				t.Error("no session cookie sent")
			}
			obs, err := b.Poll(t.Context(), m[1])
			if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning {
				t.Errorf("Poll of the started job: %v, %+v", err, obs)
			}
			if sim.Logins("TrafficOps") != 1 {
				t.Errorf("logins = %d, want 1 shared by the start and the poll", sim.Logins("TrafficOps"))
			}
		})
	}
}

func TestSendResendsTheBodyUnchangedAfterARenewedSession(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, passwordCreds, nil)
	if _, _, err := backendtest.Send(t, b, acmeRequest()); err != nil {
		t.Fatal(err)
	}
	sim.ExpireSessions()
	resp, _, err := backendtest.Send(t, b, acmeRequest())
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Send after expiry: %v, %+v", err, resp)
	}
	recs := sim.StartRecords(vendorsim.TrafficOpsACME)
	if len(recs) != 3 || recs[1].Status != http.StatusUnauthorized || recs[2].Status != http.StatusAccepted {
		t.Fatalf("requests: %+v", recs)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Body, acmeRequest().Body) {
			t.Errorf("body %q, want it unchanged", r.Body)
		}
	}
	if sim.Logins("TrafficOps") != 2 || sim.JobsCreated(vendorsim.TrafficOpsACME) != 2 {
		t.Errorf("logins %d, jobs %d; want 2 and 2", sim.Logins("TrafficOps"), sim.JobsCreated(vendorsim.TrafficOpsACME))
	}
}

func TestSendReturnsEveryAnswerForTheCallerToClassify(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	b := newBackend(t, url, passwordCreds, nil)
	for _, status := range []int{400, 403, 404, 429, 500, 503} {
		sim.InjectStartFaults(vendorsim.TrafficOpsACME, 1, vendorsim.Fault{Status: status})
		resp, written, err := backendtest.Send(t, b, acmeRequest())
		if err != nil || resp.StatusCode != status || !written {
			t.Errorf("HTTP %d: %v, %+v", status, err, resp)
		}
	}
}

func TestSendWithRefusedCredentialsIsAnAuthenticationError(t *testing.T) {
	sim, url := backendtest.StartSim(t)
	_, _, err := backendtest.Send(t, newBackend(t, url, backend.Credentials{"token": []byte("wrong-Secret!")}, nil), acmeRequest())
	if backend.KindOf(err) != backend.KindAuthentication {
		t.Fatalf("got %v, want an authentication error", err)
	}
	backendtest.ExpectNoSecret(NewWithT(t), err.Error(), "wrong-Secret!")
	if sim.StartRequests("") != 0 {
		t.Error("a start request was sent without a session")
	}
}
