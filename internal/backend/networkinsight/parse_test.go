package networkinsight

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

// docExample is the 200 example of "Get Bulk Application Task Progress".
var docExample = backendtest.Example("task-progress-200-finished.json")

// docErrorExample is the documented body of 401, 404 and 500.
var docErrorExample = backendtest.Example("error-response.json")

func reply(status int, body string) *backend.Response {
	return &backend.Response{StatusCode: status, Header: http.Header{}, Body: []byte(body)}
}

func TestParseProgressReplyMapsEveryStatusWord(t *testing.T) {
	cases := map[string]struct {
		body         string
		wantPhase    v1alpha1.TaskPhase
		wantProgress *int32
		wantUnknown  bool
	}{
		"FINISHED is Succeeded": {
			body: `{"status":"FINISHED","progress":100}`, wantPhase: v1alpha1.TaskPhaseSucceeded, wantProgress: ptr.To[int32](100)},
		"finished in lower case is Succeeded": {
			body: `{"status":"finished","progress":100}`, wantPhase: v1alpha1.TaskPhaseSucceeded, wantProgress: ptr.To[int32](100)},
		"FINISHED without progress is Succeeded": {
			body: `{"status":"FINISHED"}`, wantPhase: v1alpha1.TaskPhaseSucceeded},
		"progress 100 with a running word is Succeeded": {
			body: `{"status":"IN_PROGRESS","progress":100.0}`, wantPhase: v1alpha1.TaskPhaseSucceeded, wantProgress: ptr.To[int32](100)},
		"progress 100 with an unknown word is Succeeded and flagged": {
			body: `{"status":"WRAPPING_UP","progress":100}`, wantPhase: v1alpha1.TaskPhaseSucceeded, wantProgress: ptr.To[int32](100), wantUnknown: true},
		"progress 100 without status is Succeeded": {
			body: `{"progress":100}`, wantPhase: v1alpha1.TaskPhaseSucceeded, wantProgress: ptr.To[int32](100)},
		"FAILED is Failed": {
			body: `{"status":"FAILED","progress":40}`, wantPhase: v1alpha1.TaskPhaseFailed, wantProgress: ptr.To[int32](40)},
		"ERROR is Failed": {
			body: `{"status":"ERROR","progress":0}`, wantPhase: v1alpha1.TaskPhaseFailed, wantProgress: ptr.To[int32](0)},
		"CANCELLED is Failed": {
			body: `{"status":"CANCELLED","progress":12.5}`, wantPhase: v1alpha1.TaskPhaseFailed, wantProgress: ptr.To[int32](12)},
		"CANCELED is Failed": {
			body: `{"status":"CANCELED"}`, wantPhase: v1alpha1.TaskPhaseFailed},
		"FAILED at progress 100 is Failed": {
			body: `{"status":"FAILED","progress":100}`, wantPhase: v1alpha1.TaskPhaseFailed, wantProgress: ptr.To[int32](100)},
		"IN_PROGRESS is Running, progress floored": {
			body: `{"status":"IN_PROGRESS","progress":99.99}`, wantPhase: v1alpha1.TaskPhaseRunning, wantProgress: ptr.To[int32](99)},
		"RUNNING is Running": {
			body: `{"status":"RUNNING","progress":3}`, wantPhase: v1alpha1.TaskPhaseRunning, wantProgress: ptr.To[int32](3)},
		"STARTED is Running": {
			body: `{"status":"STARTED"}`, wantPhase: v1alpha1.TaskPhaseRunning},
		"NOT_STARTED is Running": {
			body: `{"status":"NOT_STARTED","progress":0}`, wantPhase: v1alpha1.TaskPhaseRunning, wantProgress: ptr.To[int32](0)},
		"PENDING is Running": {
			body: `{"status":"PENDING"}`, wantPhase: v1alpha1.TaskPhaseRunning},
		"QUEUED is Running": {
			body: `{"status":"QUEUED"}`, wantPhase: v1alpha1.TaskPhaseRunning},
		"an unknown word is Running and flagged": {
			body: `{"status":"REINDEXING","progress":50}`, wantPhase: v1alpha1.TaskPhaseRunning, wantProgress: ptr.To[int32](50), wantUnknown: true},
		"no status below 100 is Running": {
			body: `{"progress":10}`, wantPhase: v1alpha1.TaskPhaseRunning, wantProgress: ptr.To[int32](10)},
		"negative progress is clamped": {
			body: `{"status":"IN_PROGRESS","progress":-5}`, wantPhase: v1alpha1.TaskPhaseRunning, wantProgress: ptr.To[int32](0)},
		"huge progress is clamped": {
			body: `{"progress":1e300}`, wantPhase: v1alpha1.TaskPhaseSucceeded, wantProgress: ptr.To[int32](100)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obs, err := parseProgressReply(reply(200, tc.body))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Phase).To(Equal(tc.wantPhase))
			g.Expect(obs.Progress).To(Equal(tc.wantProgress))
			g.Expect(obs.UnknownStatus).To(Equal(tc.wantUnknown))
			var raw struct{ Status string }
			_ = json.Unmarshal([]byte(tc.body), &raw)
			g.Expect(obs.VendorStatus).To(Equal(raw.Status), "the vendor's word is kept verbatim")
		})
	}
}

func TestParseProgressReplyReadsTheDocumentationExample(t *testing.T) {
	g := NewWithT(t)
	obs, err := parseProgressReply(reply(200, docExample))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(obs.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	g.Expect(obs.VendorStatus).To(Equal("FINISHED"))
	g.Expect(obs.TaskName).To(Equal("APP_BULK_SAVE"))
	g.Expect(obs.Progress).To(HaveValue(BeEquivalentTo(100)))
	g.Expect(obs.StartTime).To(HaveValue(Equal(time.UnixMilli(1641321499579).UTC())))
	g.Expect(obs.Message).To(Equal("1 of 1 applications failed to save: support-app-web (ALREADY_SAVED_APPLICATION): Application email-app is already saved."))
	var result []map[string]string
	g.Expect(json.Unmarshal(obs.Result, &result)).To(Succeed())
	g.Expect(result).To(HaveLen(1))
	g.Expect(result[0]).To(HaveKeyWithValue("entityId", "18203:565:2854896465419091802"))
}

func TestParseProgressReplyCountsFailedApplications(t *testing.T) {
	cases := map[string]struct {
		body        string
		wantMessage string
	}{
		"camelCase items": {
			body: `{"status":"FINISHED","progress":100,"app_save_response":[
				{"entityId":"1","name":"web","responseCode":"SUCCESS"},
				{"entityId":"2","name":"db","responseCode":"ALREADY_SAVED_APPLICATION","errorMessage":"Application db is already saved."},
				{"entityId":"3","name":"app","responseCode":"SUCCESS"},
				{"entityId":"4","name":"cache","responseCode":"INVALID_MEMBERS","errorMessage":"No members"},
				{"entityId":"5","name":"lb","responseCode":"SUCCESS"}]}`,
			wantMessage: "2 of 5 applications failed to save: db (ALREADY_SAVED_APPLICATION): Application db is already saved.",
		},
		"snake_case items": {
			body: `{"status":"FINISHED","progress":100,"app_save_response":[
				{"entity_id":"1","name":"web","response_code":"SUCCESS"},
				{"entity_id":"2","response_code":"DUPLICATE_NAME","error_message":"Name taken"}]}`,
			wantMessage: "1 of 2 applications failed to save: 2 (DUPLICATE_NAME): Name taken",
		},
		"an error message without a code counts as failed": {
			body:        `{"status":"FINISHED","app_save_response":[{"name":"web","errorMessage":"boom"}]}`,
			wantMessage: "1 of 1 applications failed to save: web: boom",
		},
		"a code without a message is quoted": {
			body:        `{"status":"FINISHED","app_save_response":[{"name":"web","responseCode":"QUOTA_EXCEEDED"}]}`,
			wantMessage: "1 of 1 applications failed to save: web: QUOTA_EXCEEDED",
		},
		"all saved": {
			body:        `{"status":"FINISHED","progress":100,"app_save_response":[{"entityId":"1","responseCode":"SUCCESS"},{"entityId":"2","responseCode":"success"}]}`,
			wantMessage: "Saved 2 applications",
		},
		"empty array": {
			body: `{"status":"FINISHED","progress":100,"app_save_response":[]}`,
		},
		"a failed task quotes its first failed item": {
			body:        `{"status":"FAILED","app_save_response":[{"responseCode":"ERROR","errorMessage":"NSX manager unreachable"}]}`,
			wantMessage: "ERROR: NSX manager unreachable",
		},
		"running items are not summarised": {
			body: `{"status":"IN_PROGRESS","progress":50,"app_save_response":[{"responseCode":"ERROR","errorMessage":"x"}]}`,
		},
		"a message with line breaks stays on one line": {
			body:        `{"status":"FINISHED","app_save_response":[{"name":"web","responseCode":"E","errorMessage":"line one\nline two"}]}`,
			wantMessage: "1 of 1 applications failed to save: web (E): line one line two",
		},
		"an entity ID given as a number is shown": {
			body:        `{"status":"FINISHED","app_save_response":[{"entityId":42,"responseCode":"E"}]}`,
			wantMessage: "1 of 1 applications failed to save: 42: E",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obs, err := parseProgressReply(reply(200, tc.body))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs.Message).To(Equal(tc.wantMessage))
			g.Expect(json.Valid(obs.Result)).To(BeTrue())
			g.Expect(string(obs.Result)).To(HavePrefix("["))
		})
	}
}

func TestParseProgressReplyRejectsBodiesNotOfTheDocumentedShape(t *testing.T) {
	cases := map[string]string{
		"not JSON":                        `<html><body>Bad Gateway</body></html>`,
		"empty":                           ``,
		"truncated":                       `{"status":"FINI`,
		"an array":                        `[]`,
		"neither status nor progress":     `{"request_id":"x"}`,
		"status not a string":             `{"status":1}`,
		"progress not a number":           `{"status":"IN_PROGRESS","progress":"50"}`,
		"app_save_response not an array":  `{"status":"FINISHED","app_save_response":{"entityId":"1"}}`,
		"app_save_response of non-object": `{"status":"FINISHED","app_save_response":["x"]}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := parseProgressReply(reply(200, body))
			g.Expect(backend.KindOf(err)).To(Equal(backend.KindTransient))
			g.Expect(err.Error()).To(ContainSubstring("not the documented shape"))
		})
	}
}

func TestParseProgressReplyQuotesEveryDocumentedErrorBody(t *testing.T) {
	cases := map[string]struct {
		status   int
		body     string
		wantKind backend.ErrorKind
		wantMsg  string
	}{
		"401 documented example": {
			status: 401, body: docErrorExample, wantKind: backend.KindAuthentication,
			wantMsg: "vendor answered HTTP 401: string (code 0)",
		},
		"401": {
			status: 401, body: `{"code":401,"message":"Token is invalid or expired","details":[]}`, wantKind: backend.KindAuthentication,
			wantMsg: "vendor answered HTTP 401: Token is invalid or expired (code 401)",
		},
		"404 with a detail": {
			status: 404, body: `{"code":404,"message":"Not found","details":[{"code":404,"message":"No task for request id X","target":["requestId"]}]}`,
			wantKind: backend.KindNotFound,
			wantMsg:  "vendor answered HTTP 404: Not found (code 404); No task for request id X [requestId]",
		},
		"500": {
			status: 500, body: `{"code":500,"message":"Internal error"}`, wantKind: backend.KindTransient,
			wantMsg: "vendor answered HTTP 500: Internal error (code 500)",
		},
		"a string code": {
			status: 500, body: `{"code":"E_INTERNAL","message":"Internal error"}`, wantKind: backend.KindTransient,
			wantMsg: "vendor answered HTTP 500: Internal error (code E_INTERNAL)",
		},
		"403 undocumented but the same shape": {
			status: 403, body: `{"code":403,"message":"Forbidden"}`, wantKind: backend.KindAuthentication,
			wantMsg: "vendor answered HTTP 403: Forbidden (code 403)",
		},
		"400 is terminal": {
			status: 400, body: `{"code":400,"message":"Bad request"}`, wantKind: backend.KindTerminal,
			wantMsg: "vendor answered HTTP 400: Bad request (code 400)",
		},
		"502 HTML page": {
			status: 502, body: `<html>502 Bad Gateway</html>`, wantKind: backend.KindTransient,
			wantMsg: `vendor answered HTTP 502 with a body that is not the vendor's error shape: "<html>502 Bad Gateway</html>"`,
		},
		"404 HTML page is not a task answer": {
			status: 404, body: `<html>Not Found</html>`, wantKind: backend.KindTransient,
			wantMsg: `vendor answered HTTP 404 with a body that is not the documented shape (404 without Network Insight's error body; check spec.url): "<html>Not Found</html>"`,
		},
		"404 with an empty body": {
			status: 404, body: ``, wantKind: backend.KindNotFound, wantMsg: "vendor answered HTTP 404",
		},
		"302 redirect": {
			status: 302, body: ``, wantKind: backend.KindTransient,
			wantMsg: `vendor answered HTTP 302 with a body that is not the documented shape (unexpected status): ""`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := parseProgressReply(reply(tc.status, tc.body))
			g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
			g.Expect(err.Error()).To(Equal(tc.wantMsg))
		})
	}
}

func TestParseProgressReplyKeepsRetryAfter(t *testing.T) {
	g := NewWithT(t)
	resp := reply(429, `{"code":429,"message":"Too many requests"}`)
	resp.RetryAfter = 7 * time.Second
	_, err := parseProgressReply(resp)
	e, ok := backend.AsError(err)
	g.Expect(ok).To(BeTrue())
	g.Expect(e.Kind).To(Equal(backend.KindTransient))
	g.Expect(e.RetryAfter).To(Equal(7 * time.Second))
}

func TestParseLoginReply(t *testing.T) {
	now := time.UnixMilli(1641321499579)
	cases := map[string]struct {
		status     int
		body       string
		wantToken  string
		wantExpiry time.Time
		wantKind   backend.ErrorKind
		wantMsg    string
	}{
		"expiry in milliseconds, as in the examples": {
			status: 200, body: `{"token":"tok+A==","expiry":1641339499579}`,
			wantToken: "tok+A==", wantExpiry: time.UnixMilli(1641339499579).UTC(),
		},
		"expiry in seconds, as documented": {
			status: 200, body: `{"token":"tok","expiry":1641339499}`,
			wantToken: "tok", wantExpiry: time.Unix(1641339499, 0).UTC(),
		},
		"no expiry": {
			status: 200, body: `{"token":"tok"}`, wantToken: "tok",
		},
		"an expiry already past is not trusted": {
			status: 200, body: `{"token":"tok","expiry":1641321400000}`, wantToken: "tok",
		},
		"no token": {
			status: 200, body: `{"expiry":1641339499579}`, wantKind: backend.KindTransient,
			wantMsg: "Network Insight login answered HTTP 200 without a token",
		},
		"not JSON": {
			status: 200, body: `<html/>`, wantKind: backend.KindTransient,
			wantMsg: `vendor answered HTTP 200 with a body that is not the documented shape (login answer is not JSON): "<html/>"`,
		},
		"401 wrong password or domain": {
			status: 401, body: `{"code":401,"message":"Authentication failed"}`, wantKind: backend.KindAuthentication,
			wantMsg: "Network Insight refused the login (HTTP 401): Authentication failed (code 401); check username, password and spec.networkInsight domain",
		},
		"404 wrong URL": {
			status: 404, body: `<html/>`, wantKind: backend.KindInvalidConfig,
			wantMsg: "no Network Insight login endpoint at spec.url (POST /api/ni/auth/token answered HTTP 404); spec.url must be the appliance's base URL",
		},
		"400 bad domain type": {
			status: 400, body: `{"code":400,"message":"Invalid domain_type"}`, wantKind: backend.KindInvalidConfig,
			wantMsg: "Network Insight rejected the login request (HTTP 400): Invalid domain_type (code 400); check spec.networkInsight",
		},
		"500": {
			status: 500, body: `{"code":500,"message":"Internal error"}`, wantKind: backend.KindTransient,
			wantMsg: "Network Insight login failed: vendor answered HTTP 500: Internal error (code 500)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			token, expiry, err := parseLoginReply(reply(tc.status, tc.body), now, refreshBefore)
			if tc.wantKind != "" {
				g.Expect(backend.KindOf(err)).To(Equal(tc.wantKind))
				g.Expect(err.Error()).To(Equal(tc.wantMsg))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(token).To(Equal(tc.wantToken))
			g.Expect(expiry).To(Equal(tc.wantExpiry))
		})
	}
}

func FuzzParseProgressReply(f *testing.F) {
	f.Add(200, docExample)
	f.Add(401, docErrorExample)
	f.Add(404, docErrorExample)
	f.Add(500, docErrorExample)
	f.Add(200, `{"status":"IN_PROGRESS","progress":42.7,"start_time":1.641321499579E12,"app_save_response":[{"entity_id":"1","response_code":"SUCCESS"}]}`)
	f.Add(200, `{"status":"FAILED","app_save_response":[{"responseCode":"ERROR","errorMessage":"x"}]}`)
	f.Add(200, `{"progress":1e400}`)
	f.Add(502, `<html>Bad Gateway</html>`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		obs, err := parseProgressReply(reply(status, body))
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error is not a *backend.Error: %v", err)
			}
			return
		}
		if obs.Phase != v1alpha1.TaskPhaseRunning && obs.Phase != v1alpha1.TaskPhaseSucceeded && obs.Phase != v1alpha1.TaskPhaseFailed {
			t.Fatalf("phase %q", obs.Phase)
		}
		if obs.Progress != nil && (*obs.Progress < 0 || *obs.Progress > 100) {
			t.Fatalf("progress %d out of range", *obs.Progress)
		}
		if obs.Result != nil && !json.Valid(obs.Result) {
			t.Fatalf("result is not JSON: %q", obs.Result)
		}
		if strings.ContainsAny(obs.Message, "\n\r") {
			t.Fatalf("message is not one line: %q", obs.Message)
		}
	})
}

func FuzzParseLoginReply(f *testing.F) {
	f.Add(200, `{"token":"Gw9Gzq+eNJRRnYc2ZFXfDA==","expiry":1641339499579}`)
	f.Add(200, `{"token":"t","expiry":1641339499}`)
	f.Add(401, docErrorExample)
	f.Add(404, `<html/>`)
	f.Add(500, docErrorExample)
	now := time.UnixMilli(1641321499579)
	f.Fuzz(func(t *testing.T, status int, body string) {
		token, _, err := parseLoginReply(reply(status, body), now, refreshBefore)
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error is not a *backend.Error: %v", err)
			}
			return
		}
		if token == "" {
			t.Fatal("no token and no error")
		}
	})
}
