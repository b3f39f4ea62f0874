package apigateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// Example bodies from "Querying the Result of an Asynchronous Task".
var (
	docImportSucceeded = backendtest.Example("async-task-200-import-succeed.json")
	docExportSucceeded = backendtest.Example("async-task-200-export-succeed.json")
	docImportFailed    = backendtest.Example("async-task-200-import-failed.json")
	docProcessing      = backendtest.Example("async-task-200-processing.json")
	docWaiting         = backendtest.Example("async-task-200-waiting.json")
)

// newTestBackend returns a backend with the token secretToken, talking to a simulator that accepts
// backendtest.SimToken.
func newTestBackend(t *testing.T, secretToken string) (backend.Backend, *vendorsim.Simulator) {
	t.Helper()
	return newBackendWith(t, map[string]string{"token": secretToken}, "")
}

func TestPollMapsEveryStatusWord(t *testing.T) {
	cases := map[string]struct {
		body        string
		wantPhase   v1alpha1.TaskPhase
		wantStatus  string
		wantMessage string
		wantResult  string
		wantUnknown bool
	}{
		"waiting":    {body: docWaiting, wantPhase: v1alpha1.TaskPhasePending, wantStatus: "waiting"},
		"processing": {body: docProcessing, wantPhase: v1alpha1.TaskPhaseRunning, wantStatus: "processing"},
		"succeed (import)": {body: docImportSucceeded, wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "succeed",
			wantMessage: "Imported 1 APIs",
			wantResult:  `{"success":[{"id":"ee93ce6815f04896b301452982b92222","action":"create","method":"GET","path":"/test1"}],"failure":[],"swagger":{"id":"de1852ab6c5e4090b0bd88a02058e650","result":"Success"},"group_id":"9100ae30705947cc9543d37cd7fb388c"}`},
		"succeed (export)": {body: docExportSucceeded, wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "succeed",
			wantResult: `{"FileName":"test8-RELEASE-all-2023-07-11-19:54:22","FileType":".json","Comment":"{\n\t\"swagger\": \"2.0\"\n}"}`},
		"succeeded (Huawei Cloud spelling)": {body: strings.Replace(docWaiting, `"waiting"`, `"succeeded"`, 1),
			wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "succeeded"},
		"failed": {body: docImportFailed, wantPhase: v1alpha1.TaskPhaseFailed, wantStatus: "failed",
			wantMessage: "APIG.3201: The API group name already exists",
			wantResult:  `{"error_code":"APIG.3201","error_msg":"The API group name already exists"}`},
		"import with failures": {
			body:      `{"task_id":"x","task_status":"succeed","task_type":"import_api","task_result":"{\"success\":[],\"failure\":[{\"method\":\"GET\",\"path\":\"/a\",\"error_code\":\"APIG.3301\",\"error_msg\":\"API exists\"}]}"}`,
			wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "succeed",
			wantMessage: "Imported 0 APIs, 1 failed (first: APIG.3301: API exists)",
			wantResult:  `{"success":[],"failure":[{"method":"GET","path":"/a","error_code":"APIG.3301","error_msg":"API exists"}]}`},
		"unknown word": {body: strings.Replace(docWaiting, `"waiting"`, `"paused"`, 1),
			wantPhase: v1alpha1.TaskPhaseRunning, wantStatus: "paused", wantUnknown: true},
		"task_result not JSON": {body: `{"task_id":"x","task_status":"succeed","task_type":"export_api","task_result":"plain text"}`,
			wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "succeed",
			wantMessage: "task_result is not JSON; kept as text", wantResult: `"plain text"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, sim := newTestBackend(t, backendtest.SimToken)
			sim.AddTask("t1", vendorsim.Step{RawBody: tc.body})
			obs, err := b.Poll(context.Background(), "t1")
			if err != nil {
				t.Fatalf("Poll: %v", err)
			}
			if obs.Phase != tc.wantPhase || obs.VendorStatus != tc.wantStatus || obs.Message != tc.wantMessage || obs.UnknownStatus != tc.wantUnknown {
				t.Errorf("got phase %q status %q message %q unknown %v", obs.Phase, obs.VendorStatus, obs.Message, obs.UnknownStatus)
			}
			if diff := cmp.Diff(tc.wantResult, string(obs.Result)); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if obs.Result != nil && !json.Valid(obs.Result) {
				t.Errorf("result is not JSON: %s", obs.Result)
			}
		})
	}
}

func TestPollClassifiesEveryDocumentedError(t *testing.T) {
	cases := map[string]struct {
		status   int
		token    string
		taskID   string
		wantKind backend.ErrorKind
		wantText string
	}{
		"400 bad request": {status: 400, wantKind: backend.KindTerminal, wantText: "APIG.2001: The request parameters must be specified"},
		"401 wrong token": {token: "wrong", wantKind: backend.KindAuthentication, wantText: "HTTP 401: APIG.1002: Incorrect token or token resolution failed"},
		"403 forbidden":   {status: 403, wantKind: backend.KindAuthentication, wantText: "APIG.1005: No permissions to request this method"},
		"404 no task":     {taskID: "unknown", wantKind: backend.KindNotFound, wantText: "APIG.3093: The asynchronous task unknown does not exist"},
		"500 system":      {status: 500, wantKind: backend.KindTransient, wantText: "HTTP 500: APIG.9999: System error"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tok := backendtest.SimToken
			if tc.token != "" {
				tok = tc.token
			}
			b, sim := newTestBackend(t, tok)
			sim.AddTask("t1", vendorsim.Step{HTTPStatus: tc.status})
			id := "t1"
			if tc.taskID != "" {
				id = tc.taskID
			}
			_, err := b.Poll(context.Background(), id)
			if backend.KindOf(err) != tc.wantKind {
				t.Fatalf("kind = %s (%v), want %s", backend.KindOf(err), err, tc.wantKind)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.wantText)
			}
			if strings.Contains(err.Error(), tok) {
				t.Errorf("message %q contains the token", err.Error())
			}
		})
	}
}

func TestPollRejectsBodiesOfTheWrongShape(t *testing.T) {
	cases := map[string]vendorsim.Step{
		"HTML from a proxy":       {RawBody: "<html><body>502 Bad Gateway</body></html>", HTTPStatus: http.StatusBadGateway},
		"not JSON with 200":       {RawBody: "OK"},
		"JSON without a status":   {RawBody: `{"task_id":"t1"}`},
		"truncated JSON":          {RawBody: docProcessing[:40]},
		"error status, text body": {RawBody: "Service Unavailable", HTTPStatus: http.StatusServiceUnavailable},
	}
	for name, step := range cases {
		t.Run(name, func(t *testing.T) {
			b, sim := newTestBackend(t, backendtest.SimToken)
			sim.AddTask("t1", step)
			_, err := b.Poll(context.Background(), "t1")
			if backend.KindOf(err) != backend.KindTransient {
				t.Fatalf("kind = %s (%v), want Transient", backend.KindOf(err), err)
			}
		})
	}
}

func TestCheckAcceptsTheDocumentedNotFound(t *testing.T) {
	b, _ := newTestBackend(t, backendtest.SimToken)
	if err := b.Check(context.Background()); err != nil {
		t.Errorf("Check with a good token: %v", err)
	}
	bad, _ := newTestBackend(t, "wrong")
	if err := bad.Check(context.Background()); backend.KindOf(err) != backend.KindAuthentication {
		t.Errorf("Check with a wrong token: %v, want an authentication error", err)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	cases := map[string]backend.Config{
		"no apiGateway settings": {Spec: v1alpha1.TaskBackendSpec{URL: "https://x"}, Credentials: backend.Credentials{"token": []byte("t")}},
		"no token": {Spec: v1alpha1.TaskBackendSpec{URL: "https://x", APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p", InstanceID: "i"}},
			Credentials: backend.Credentials{}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); backend.KindOf(err) != backend.KindInvalidConfig {
				t.Errorf("New: %v, want InvalidConfig", err)
			}
		})
	}
}

func FuzzParseTaskReply(f *testing.F) {
	for _, body := range []string{docImportSucceeded, docExportSucceeded, docImportFailed, docProcessing, docWaiting,
		`{"error_code":"APIG.3093","error_msg":"The asynchronous task d9ce8c9eede54b3f841ec324fe0bfdc2 does not exist"}`} {
		f.Add(200, []byte(body))
	}
	f.Add(404, []byte(`{"error_code":"APIG.3093","error_msg":"x"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		obs, err := parseTaskReply(&backend.Response{StatusCode: status, Body: body})
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			return
		}
		if obs.Result != nil && !json.Valid(obs.Result) {
			t.Fatalf("result is not JSON: %q", obs.Result)
		}
	})
}

func TestHostileTaskIDsNeverLeaveTheTaskPath(t *testing.T) {
	rec := backendtest.NewRecorder(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(docWaiting))
	})
	b := backendtest.NewBackend(t, New, v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeAPIGateway, URL: rec.URL,
		APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"}},
		backend.Credentials{"token": []byte(backendtest.SimToken)})
	backendtest.ExpectHostileIDsKeptInTheirSegment(t, rec, "taskID",
		func(id string) error { _, err := b.Poll(context.Background(), id); return err },
		func(h backendtest.HostileTaskID) []string {
			return []string{"GET /v2/p1/apigw/instances/i1/async-tasks/" + h.Segment}
		})
}
