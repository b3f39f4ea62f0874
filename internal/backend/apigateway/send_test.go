package apigateway

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/apigateway/aksk"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

var _ backend.Sender = (*apiGateway)(nil)

// importRequest is POST .../openapi/async-import with the documented form: the file part file_name and
// the group fields.
func importRequest(t *testing.T) backend.StartRequest {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.SetBoundary("asynctask-operator-boundary")
	_ = w.WriteField("is_create_group", "false")
	_ = w.WriteField("group_id", "d9ce8c9eede54b3f841ec324fe0bfdc2")
	part, _ := w.CreateFormFile("file_name", "petstore.json")
	_, _ = part.Write([]byte(`{"swagger":"2.0","info":{"title":"petstore","version":"1.0"},"paths":{}}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return backend.StartRequest{Method: http.MethodPost, Path: "/v2/p1/apigw/instances/i1/openapi/async-import",
		Header: http.Header{"Content-Type": {w.FormDataContentType()}, "X-Request-Tag": {"t1"}}, Body: body.Bytes()}
}

var sendCreds = map[string]map[string]string{
	"token":    {"token": backendtest.SimToken},
	"password": {"username": backendtest.SimUser, "password": backendtest.SimPassword},
	"AK/SK":    {"accessKey": backendtest.SimAccessKey, "secretKey": backendtest.SimSecretKey},
}

func TestSendStartsAnImportThatPollsTrack(t *testing.T) {
	for name, creds := range sendCreds {
		t.Run(name, func(t *testing.T) {
			b, sim := newBackendWith(t, creds, "")
			req := importRequest(t)
			resp, written, err := backendtest.Send(t, b, req)
			if err != nil || resp.StatusCode != http.StatusAccepted || !written {
				t.Fatalf("Send: %v, %+v, written %v", err, resp, written)
			}
			var answer struct {
				TaskID string `json:"task_id"`
			}
			_ = json.Unmarshal(resp.Body, &answer)
			recs := sim.StartRecords(vendorsim.APIGatewayImport)
			if len(recs) != 1 || !bytes.Equal(recs[0].Body, req.Body) || recs[0].Header.Get("X-Request-Tag") != "t1" ||
				recs[0].Header.Get("Content-Type") != req.Header.Get("Content-Type") || recs[0].JobID != answer.TaskID {
				t.Fatalf("the gateway got %+v", recs)
			}
			obs, err := b.Poll(t.Context(), answer.TaskID)
			if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning || obs.TaskName != "import_api" {
				t.Errorf("Poll of the started task: %v, %+v", err, obs)
			}
		})
	}
}

func TestSendResendsTheBodyUnchangedAfterARenewedIAMToken(t *testing.T) {
	b, sim := newBackendWith(t, sendCreds["password"], "")
	req := importRequest(t)
	if _, _, err := backendtest.Send(t, b, req); err != nil {
		t.Fatal(err)
	}
	sim.ExpireSessions()
	resp, _, err := backendtest.Send(t, b, req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Send after expiry: %v, %+v", err, resp)
	}
	recs := sim.StartRecords(vendorsim.APIGatewayImport)
	if len(recs) != 3 || recs[1].Status != http.StatusUnauthorized || recs[2].Status != http.StatusAccepted {
		t.Fatalf("requests: %+v", recs)
	}
	for _, r := range recs {
		if !bytes.Equal(r.Body, req.Body) {
			t.Errorf("body %q, want it unchanged", r.Body)
		}
	}
	if sim.Logins("APIGateway") != 2 || sim.JobsCreated(vendorsim.APIGatewayImport) != 2 {
		t.Errorf("logins %d, jobs %d; want 2 and 2", sim.Logins("APIGateway"), sim.JobsCreated(vendorsim.APIGatewayImport))
	}
}

// TestAKSKSignatureCoversTheStartRequestAndItsBody checks the signature of a start request with the verifier of
// package aksk (the one its golden vectors hold to), on a server that sees the request as the gateway does.
func TestAKSKSignatureCoversTheStartRequestAndItsBody(t *testing.T) {
	type seen struct {
		req  *http.Request
		body []byte
	}
	got := make(chan seen, 1)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r, body}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"task_id":"d9ce8c9eede54b3f841ec324fe0bfdc2"}`))
	}))
	t.Cleanup(server.Close)
	b := backendtest.NewBackend(t, New, v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeAPIGateway, URL: server.URL,
		APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"}},
		backend.Credentials{"accessKey": []byte("AK"), "secretKey": []byte("SK-Secret!")})
	req := backend.StartRequest{Method: http.MethodPost, Path: "/v2/p1/apigw/instances/i1/openapi/async-export",
		Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Tag": {"t1"}},
		Body:   []byte(`{"define":"all","env_id":"DEFAULT_ENVIRONMENT_RELEASE_ID","group_id":"9100ae30705947cc9543d37cd7fb388c","type":"json"}`)}
	if resp, _, err := backendtest.Send(t, b, req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Send: %v, %+v", err, resp)
	}
	s := <-got
	if !bytes.Equal(s.body, req.Body) {
		t.Fatalf("body %q, want %q", s.body, req.Body)
	}
	auth := s.req.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "SDK-HMAC-SHA256 Access=AK, SignedHeaders=accept;host;x-project-id;x-request-tag;x-sdk-date, Signature=") {
		t.Errorf("Authorization %q does not sign the request's headers", auth)
	}
	if !aksk.Verify(s.req, s.body, "AK", "SK-Secret!") {
		t.Error("the gateway's verifier refuses the signature")
	}
	if aksk.Verify(s.req, []byte(`{"env_id":"other"}`), "AK", "SK-Secret!") {
		t.Error("the signature verifies for another body")
	}
}

func TestSendReturnsEveryAnswerForTheCallerToClassify(t *testing.T) {
	b, sim := newBackendWith(t, sendCreds["token"], "")
	for _, status := range []int{400, 403, 429, 500, 503} {
		sim.InjectStartFaults(vendorsim.APIGatewayImport, 1, vendorsim.Fault{Status: status})
		resp, written, err := backendtest.Send(t, b, importRequest(t))
		if err != nil || resp.StatusCode != status || !written {
			t.Errorf("HTTP %d: %v, %+v", status, err, resp)
		}
	}
}

func TestSendWithRefusedCredentialsIsAnAuthenticationError(t *testing.T) {
	for name, creds := range map[string]map[string]string{
		"wrong token":      {"token": "wrong-Secret!"},
		"wrong secret key": {"accessKey": backendtest.SimAccessKey, "secretKey": "wrong-Secret!"},
		"wrong password":   {"username": backendtest.SimUser, "password": "wrong-Secret!"},
	} {
		t.Run(name, func(t *testing.T) {
			b, sim := newBackendWith(t, creds, "")
			_, _, err := backendtest.Send(t, b, importRequest(t))
			if backend.KindOf(err) != backend.KindAuthentication {
				t.Fatalf("got %v, want an authentication error", err)
			}
			backendtest.ExpectNoSecret(NewWithT(t), err.Error(), "wrong-Secret!")
			if sim.JobsCreated("") != 0 {
				t.Error("a refused request created a job")
			}
		})
	}
}
