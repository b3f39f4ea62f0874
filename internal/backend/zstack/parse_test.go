package zstack

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// Bodies of ZStack's API reference: the example of "Get Task Progress (GetTaskProgress)", and the shapes of
// its ErrorCode, API job and LogInByAccount replies.
var (
	docProgressExample = backendtest.Example("task-progresses-200.json")
	docProgressEmpty   = backendtest.Example("task-progresses-200-empty.json")
	docErrorBody       = backendtest.Example("api-error-503.json")
	docSessionExpired  = backendtest.Example("api-error-503-invalid-session.json")
	docJobResult       = backendtest.Example("api-jobs-200-result.json")
	docJobExpired      = backendtest.Example("api-jobs-404-expired.txt")
	docLoginReply      = backendtest.Example("accounts-login-200.json")
	docLoginRefused    = backendtest.Example("accounts-login-refused.json")
	progressTree       = `{"inventories": [
		{"taskUuid": "root", "taskName": "org.zstack.header.vm.APICreateVmInstanceMsg", "type": "Task", "content": "Create the VM", "time": 1.51066925E12,
		 "subTasks": [
			{"taskUuid": "p1", "taskName": "org.zstack.compute.vm.VmAllocateHostFlow", "parentUuid": "root", "type": "Progress", "content": "20", "time": 1510669251000},
			{"taskUuid": "t2", "taskName": "org.zstack.compute.vm.VmDownloadImageFlow", "parentUuid": "root", "type": "Task", "content": "Download the image", "time": 1510669252000, "totalSteps": 4, "currentStep": 2},
			{"taskUuid": "p2", "taskName": "org.zstack.compute.vm.VmDownloadImageFlow", "parentUuid": "t2", "type": "Progress", "content": "45", "time": "1510669253000"}
		 ]}
	]}`
)

func response(status int, body string, header ...string) *backend.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &backend.Response{StatusCode: status, Header: h, Body: []byte(body)}
}

func TestParseJobReplyMapsEveryJobState(t *testing.T) {
	cases := map[string]struct {
		resp        *backend.Response
		wantPhase   v1alpha1.TaskPhase
		wantStatus  string
		wantMessage string
		wantResult  string
		wantKind    backend.ErrorKind
		wantError   string
	}{
		"202 {} is a running job": {
			resp: response(202, `{}`), wantPhase: v1alpha1.TaskPhaseRunning, wantStatus: "Running",
		},
		"202 with an empty body is a running job": {
			resp: response(202, ``), wantPhase: v1alpha1.TaskPhaseRunning, wantStatus: "Running",
		},
		"200 carries the API's result": {
			resp: response(200, docJobResult), wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "Succeeded",
			wantResult: `{"inventory":{"uuid":"b3a2c7d62c3b4d4b9d2e7d1c3d0f1a2b","name":"vm1","state":"Running"}}`,
		},
		"200 {} of an API without inventory succeeded": {
			resp: response(200, `{}`), wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "Succeeded", wantResult: `{}`,
		},
		"200 with error null succeeded": {
			resp: response(200, `{"inventory": {}, "error": null}`), wantPhase: v1alpha1.TaskPhaseSucceeded, wantStatus: "Succeeded",
			wantResult: `{"inventory":{},"error":null}`,
		},
		"200 with an error is a failed job": {
			resp: response(200, `{"error": {"code": "VM.1001", "description": "cannot start"}}`), wantPhase: v1alpha1.TaskPhaseFailed,
			wantStatus: "Failed", wantMessage: "VM.1001: cannot start", wantResult: `{"error":{"code":"VM.1001","description":"cannot start"}}`,
		},
		"503 with an error body is a failed job": {
			resp: response(503, docErrorBody), wantPhase: v1alpha1.TaskPhaseFailed, wantStatus: "Failed",
			wantMessage: "SYS.1000: An internal error happened in system: unable to allocate a host (cause: HOST_ALLOCATION.1001: no available host: no host has enough CPU)",
		},
		"503 with ID.1001 is a refused session, not a failed job": {
			resp: response(503, docSessionExpired), wantKind: backend.KindAuthentication, wantError: "ID.1001: Invalid session: Session expired",
		},
		"503 with Retry-After is an overloaded server": {
			resp: response(503, docErrorBody, "Retry-After", "5"), wantKind: backend.KindTransient, wantError: "HTTP 503: SYS.1000",
		},
		"503 plain text is transient": {
			resp: response(503, "Service Unavailable"), wantKind: backend.KindTransient, wantError: "HTTP 503: Service Unavailable",
		},
		"404 the job has been expired": {
			resp: response(404, docJobExpired), wantKind: backend.KindNotFound, wantError: "HTTP 404: the job has been expired",
		},
		"400 missing header is terminal": {
			resp: response(400, "missing header Authorization"), wantKind: backend.KindTerminal, wantError: "HTTP 400: missing header Authorization",
		},
		"401 from a proxy is an authentication failure": {
			resp: response(401, "Unauthorized"), wantKind: backend.KindAuthentication,
		},
		"429 is transient": {
			resp: response(429, ""), wantKind: backend.KindTransient, wantError: "HTTP 429",
		},
		"500 with an error body is transient and quotes it": {
			resp: response(500, docErrorBody), wantKind: backend.KindTransient, wantError: "HTTP 500: SYS.1000: An internal error",
		},
		"502 HTML page is transient and not quoted": {
			resp: response(502, "<html><body>502 Bad Gateway</body></html>"), wantKind: backend.KindTransient, wantError: "vendor answered HTTP 502",
		},
		"200 that is not JSON is a bad body": {
			resp: response(200, "<html>login</html>"), wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
		"200 JSON that is not an object is a bad body": {
			resp: response(200, `["x"]`), wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
		"202 that is not JSON is a bad body": {
			resp: response(202, "accepted"), wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
		"204 is not a documented answer": {
			resp: response(204, ""), wantKind: backend.KindTransient, wantError: "unexpected HTTP 204",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obs, err := parseJobReply(tc.resp)
			if tc.wantKind != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
				g.Expect(err.Error()).To(ContainSubstring(tc.wantError))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(tc.wantPhase))
			g.Expect(obs.VendorStatus).To(Equal(tc.wantStatus))
			g.Expect(obs.Message).To(Equal(tc.wantMessage))
			g.Expect(obs.UnknownStatus).To(BeFalse())
			if tc.wantResult != "" {
				g.Expect(string(obs.Result)).To(Equal(tc.wantResult))
			}
		})
	}
}

func TestParseProgressReply(t *testing.T) {
	docTime := time.UnixMilli(1510669257141).UTC()
	treeStart := time.UnixMilli(1510669250000).UTC()
	cases := map[string]struct {
		resp      *backend.Response
		want      progressReport
		wantKind  backend.ErrorKind
		wantError string
	}{
		"the documentation's example: a Task record with a float time": {
			resp: response(200, docProgressExample),
			want: progressReport{Message: "Choose backup storage for downloading the image",
				TaskName: "org.zstack.header.vm.APICreateVmInstanceMsg", StartTime: &docTime},
		},
		"an empty list is no progress, not an error": {
			resp: response(200, docProgressEmpty),
		},
		"an object without inventories is no progress": {
			resp: response(200, `{}`),
		},
		"null inventories is no progress": {
			resp: response(200, `{"inventories": null}`),
		},
		"the newest Progress record is the percent, the newest Task record the message": {
			resp: response(200, progressTree),
			want: progressReport{Progress: ptr.To[int32](45), Message: "Download the image",
				TaskName: "org.zstack.compute.vm.VmDownloadImageFlow", StartTime: &treeStart},
		},
		"currentStep of totalSteps when no Progress record": {
			resp: response(200, `{"inventories": [{"taskName": "t", "type": "Task", "content": "step two", "time": 1510669250000, "totalSteps": 4, "currentStep": 3}]}`),
			want: progressReport{Progress: ptr.To[int32](75), Message: "step two", TaskName: "t", StartTime: &treeStart},
		},
		"a Progress content that is not a number is ignored": {
			resp: response(200, `{"inventories": [{"type": "Progress", "content": "almost"}, {"type": "Progress", "content": "150"}]}`),
			want: progressReport{Progress: ptr.To[int32](100)},
		},
		"records in list order when they have no time": {
			resp: response(200, `{"inventories": [{"taskName": "a", "type": "Progress", "content": "10"}, {"taskName": "b", "type": "Progress", "content": "30.9"}]}`),
			want: progressReport{Progress: ptr.To[int32](30), TaskName: "b"},
		},
		"odd field types do not hide the records": {
			resp: response(200, `{"inventories": [{"taskName": 7, "type": "Task", "content": {"x": 1}, "time": "soon", "totalSteps": "x", "currentStep": null, "opaque": [1]}]}`),
			want: progressReport{Message: `{"x": 1}`, TaskName: "7"},
		},
		"ID.1001 is a refused session": {
			resp: response(503, docSessionExpired), wantKind: backend.KindAuthentication, wantError: "ID.1001",
		},
		"an error in a 200 is transient": {
			resp: response(200, docErrorBody), wantKind: backend.KindTransient, wantError: "SYS.1000",
		},
		"500 with the error body is transient": {
			resp: response(500, docErrorBody), wantKind: backend.KindTransient, wantError: "HTTP 500: SYS.1000",
		},
		"400 plain text is terminal": {
			resp: response(400, "missing header Authorization"), wantKind: backend.KindTerminal, wantError: "missing header",
		},
		"a body that is not JSON": {
			resp: response(200, "<html>proxy</html>"), wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
		"inventories that are not a list": {
			resp: response(200, `{"inventories": "none"}`), wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := parseProgressReply(tc.resp)
			if tc.wantKind != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
				g.Expect(err.Error()).To(ContainSubstring(tc.wantError))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func TestParseLoginReply(t *testing.T) {
	cases := map[string]struct {
		resp        *backend.Response
		wantSession string
		wantKind    backend.ErrorKind
		wantError   string
	}{
		"the session uuid": {
			resp: response(200, docLoginReply), wantSession: "8679db834cfc4b3b93fcbf8521581eff",
		},
		"a wrong password is an authentication failure": {
			resp: response(503, docLoginRefused), wantKind: backend.KindAuthentication,
			wantError: `ZStack refused the login of account "admin" (HTTP 503): ID.1000: Authentication error: wrong account name or password`,
		},
		"an identity error in a 200": {
			resp: response(200, docLoginRefused), wantKind: backend.KindAuthentication, wantError: "ID.1000",
		},
		"400 plain text is a refused login": {
			resp: response(400, "invalid request body"), wantKind: backend.KindAuthentication, wantError: "invalid request body",
		},
		"a system error is transient": {
			resp: response(503, docErrorBody), wantKind: backend.KindTransient, wantError: "login: vendor answered HTTP 503: SYS.1000",
		},
		"429 is transient": {
			resp: response(429, ""), wantKind: backend.KindTransient,
		},
		"a body that is not JSON": {
			resp: response(200, "<html/>"), wantKind: backend.KindTransient, wantError: "not the documented shape",
		},
		"no session uuid": {
			resp: response(200, `{"inventory": {}}`), wantKind: backend.KindTransient, wantError: "no inventory.uuid",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			session, err := parseLoginReply(tc.resp, "admin")
			if tc.wantKind != "" {
				g.Expect(err).To(HaveOccurred())
				g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
				g.Expect(err.Error()).To(ContainSubstring(tc.wantError))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(session).To(Equal(tc.wantSession))
		})
	}
}

func TestSessionExpiredTellsID1001FromAFailedJob(t *testing.T) {
	g := NewWithT(t)
	g.Expect(sessionExpired(response(503, docSessionExpired))).To(BeTrue())
	g.Expect(sessionExpired(response(401, "Unauthorized"))).To(BeTrue())
	g.Expect(sessionExpired(response(503, docErrorBody))).To(BeFalse())
	g.Expect(sessionExpired(response(202, `{}`))).To(BeFalse())
	g.Expect(sessionExpired(response(503, "not json"))).To(BeFalse())
}

func TestErrorMessageIsOneShortLine(t *testing.T) {
	g := NewWithT(t)
	long := strings.Repeat("x", 3000)
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "SYS.1000", "details": "line one\nline two " + long}})
	obs, err := parseJobReply(response(503, string(body)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Message).NotTo(ContainSubstring("\n"))
	g.Expect(obs.Message).To(HavePrefix("SYS.1000: line one line two"))
	g.Expect(len([]rune(obs.Message))).To(BeNumerically("<=", maxMessage+3))
}

func FuzzParseJobReply(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{202, `{}`}, {200, docJobResult}, {503, docErrorBody}, {503, docSessionExpired}, {404, docJobExpired},
		{400, "missing header Authorization"}, {200, `{"error": {"code": "VM.1001"}}`}, {200, "<html>"}, {500, ""},
	} {
		f.Add(seed.status, []byte(seed.body), "")
	}
	f.Add(503, []byte(docErrorBody), "5")
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfter string) {
		resp := &backend.Response{StatusCode: status, Header: http.Header{}, Body: body}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		obs, err := parseJobReply(resp)
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error is not a *backend.Error: %v", err)
			}
			return
		}
		switch obs.Phase {
		case v1alpha1.TaskPhaseRunning, v1alpha1.TaskPhaseSucceeded, v1alpha1.TaskPhaseFailed:
		default:
			t.Fatalf("phase %q", obs.Phase)
		}
		if obs.Result != nil && !json.Valid(obs.Result) {
			t.Fatalf("result is not JSON: %q", obs.Result)
		}
		if strings.Contains(obs.Message, "\n") {
			t.Fatalf("message has a line break: %q", obs.Message)
		}
	})
}

func FuzzParseProgressReply(f *testing.F) {
	for _, body := range []string{docProgressExample, docProgressEmpty, progressTree, docErrorBody, docSessionExpired, `{}`,
		`{"inventories": [{"type": "Progress", "content": "45", "time": 1.510669257141E12, "totalSteps": 3, "currentStep": 1}]}`} {
		f.Add(200, []byte(body))
	}
	f.Add(503, []byte(docSessionExpired))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		report, err := parseProgressReply(&backend.Response{StatusCode: status, Header: http.Header{}, Body: body})
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error is not a *backend.Error: %v", err)
			}
			return
		}
		if p := report.Progress; p != nil && (*p < 0 || *p > 100) {
			t.Fatalf("progress %d", *p)
		}
		if strings.Contains(report.Message, "\n") {
			t.Fatalf("message has a line break: %q", report.Message)
		}
	})
}

func FuzzParseLoginReply(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{{200, docLoginReply}, {503, docLoginRefused}, {503, docErrorBody}, {400, "bad"}, {200, `{"inventory": null}`}} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		session, err := parseLoginReply(&backend.Response{StatusCode: status, Header: http.Header{}, Body: body}, "admin")
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error is not a *backend.Error: %v", err)
			}
			return
		}
		if session == "" {
			t.Fatal("no error and no session")
		}
	})
}
