package trafficops

import (
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// docExample is the response example of the async_status page.
var docExample = backendtest.Example("async-status-200-pending.json")

var docStart = time.Date(2021, 2, 18, 17, 13, 56, 352261000, time.UTC)

func TestParseStatusReplyMapsStatusWords(t *testing.T) {
	end := time.Date(2021, 2, 18, 17, 15, 1, 5000000, time.UTC)
	cases := map[string]struct {
		body string
		want backend.Observation
	}{
		"documented example, PENDING with end_time null": {
			body: docExample,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "PENDING",
				Message: "Async job has started.", StartTime: &docStart},
		},
		"PENDING with end_time omitted, as the real server answers": {
			body: `{"response":{"id":1,"status":"PENDING","start_time":"2021-02-18T17:13:56.352261Z","message":"Async job has started."}}`,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "PENDING",
				Message: "Async job has started.", StartTime: &docStart},
		},
		"SUCCEEDED with end_time": {
			body: `{"response":{"id":1,"status":"SUCCEEDED","start_time":"2021-02-18T17:13:56.352261Z","end_time":"2021-02-18T17:15:01.005Z","message":"ACME renewal complete."}}`,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded, VendorStatus: "SUCCEEDED",
				Message: "ACME renewal complete.", StartTime: &docStart, CompletionTime: &end},
		},
		"FAILED with end_time and alerts beside the response": {
			body: `{"alerts":[{"text":"some info","level":"info"}],"response":{"id":1,"status":"FAILED","start_time":"2021-02-18T17:13:56.352261Z","end_time":"2021-02-18T17:15:01.005Z","message":"ACME renewal failed: rate limited"}}`,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseFailed, VendorStatus: "FAILED",
				Message: "ACME renewal failed: rate limited", StartTime: &docStart, CompletionTime: &end},
		},
		"unknown status word runs on and is flagged": {
			body: `{"response":{"id":1,"status":"CANCELLED","start_time":"2021-02-18T17:13:56.352261Z","end_time":null,"message":""}}`,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseRunning, VendorStatus: "CANCELLED",
				UnknownStatus: true, StartTime: &docStart},
		},
		"times not of the documented shape are left out": {
			body: `{"response":{"id":1,"status":"SUCCEEDED","start_time":"yesterday","end_time":"","message":"done"}}`,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseSucceeded, VendorStatus: "SUCCEEDED", Message: "done"},
		},
		"multi-line message is kept to one line": {
			body: `{"response":{"id":1,"status":"FAILED","message":"line one\nline two"}}`,
			want: backend.Observation{Phase: v1alpha1.TaskPhaseFailed, VendorStatus: "FAILED", Message: "line one line two"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obs, err := parseStatusReply(&backend.Response{StatusCode: 200, Body: []byte(tc.body)})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(obs).To(Equal(tc.want))
		})
	}
}

func TestParseStatusReplyClassifiesErrors(t *testing.T) {
	cases := map[string]struct {
		status     int
		body       string
		retryAfter time.Duration
		kind       backend.ErrorKind
		message    string
	}{
		"400 non-integer id is terminal": {
			status: 400, body: `{"alerts":[{"text":"id must be an integer","level":"error"}]}`,
			kind: backend.KindTerminal, message: "vendor answered HTTP 400: id must be an integer",
		},
		"401 after the re-login": {
			status: 401, body: `{"alerts":[{"text":"unauthorized, please log in.","level":"error"}]}`,
			kind: backend.KindAuthentication, message: "vendor answered HTTP 401: unauthorized, please log in.",
		},
		"403 missing permission": {
			status: 403, body: `{"alerts":[{"text":"missing required Permissions: ASYNC-STATUS:READ","level":"error"}]}`,
			kind: backend.KindAuthentication, message: "vendor answered HTTP 403: missing required Permissions: ASYNC-STATUS:READ",
		},
		"404 unknown id": {
			status: 404, body: `{"alerts":[{"text":"Not Found","level":"error"}]}`,
			kind: backend.KindNotFound, message: "vendor answered HTTP 404: Not Found",
		},
		"500": {
			status: 500, body: `{"alerts":[{"text":"Internal Server Error","level":"error"}]}`,
			kind: backend.KindTransient, message: "vendor answered HTTP 500: Internal Server Error",
		},
		"429 keeps Retry-After": {
			status: 429, body: `{"alerts":[{"text":"Too Many Requests","level":"error"}]}`, retryAfter: 7 * time.Second,
			kind: backend.KindTransient, message: "vendor answered HTTP 429: Too Many Requests",
		},
		"several alerts: the error ones are quoted": {
			status: 400, body: `{"alerts":[{"text":"a warning","level":"warning"},{"text":"first","level":"error"},{"text":"second","level":"error"}]}`,
			kind: backend.KindTerminal, message: "vendor answered HTTP 400: first; second",
		},
		"502 HTML page from a proxy": {
			status: 502, body: `<html><body>Bad Gateway</body></html>`,
			kind: backend.KindTransient, message: "vendor answered HTTP 502",
		},
		"200 not JSON": {
			status: 200, body: `<html>login page</html>`,
			kind: backend.KindTransient, message: `vendor answered HTTP 200 with a body that is not the documented shape (not JSON): "<html>login page</html>"`,
		},
		"200 without response": {
			status: 200, body: `{"alerts":[{"text":"hm","level":"error"}]}`,
			kind: backend.KindTransient, message: "(no response object)",
		},
		"200 without status": {
			status: 200, body: `{"response":{"id":1,"message":"x"}}`,
			kind: backend.KindTransient, message: "(no response.status)",
		},
		"200 with a numeric status": {
			status: 200, body: `{"response":{"id":1,"status":3}}`,
			kind: backend.KindTransient, message: "(fields of unexpected types)",
		},
		"200 with a null response": {
			status: 200, body: `{"response":null}`,
			kind: backend.KindTransient, message: "(no response object)",
		},
		"204 is not the documented answer": {
			status: 204, body: ``,
			kind: backend.KindTransient, message: "(unexpected status)",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := parseStatusReply(&backend.Response{StatusCode: tc.status, Body: []byte(tc.body), RetryAfter: tc.retryAfter})
			e, ok := backend.AsError(err)
			g.Expect(ok).To(BeTrue(), "error %v is a *backend.Error", err)
			g.Expect(e.Kind).To(Equal(tc.kind))
			g.Expect(e.Message).To(ContainSubstring(tc.message))
			g.Expect(e.RetryAfter).To(Equal(tc.retryAfter))
		})
	}
}

func TestParseLoginReply(t *testing.T) {
	cookieHeader := func(values ...string) http.Header {
		return http.Header{"Set-Cookie": values}
	}
	cases := map[string]struct {
		status  int
		header  http.Header
		body    string
		cookies map[string]string
		kind    backend.ErrorKind
		message string
	}{
		"mojolicious cookie": {
			status: 200, header: cookieHeader("mojolicious=abc; Path=/; Expires=Thu, 18 Feb 2021 23:13:56 GMT; HttpOnly"),
			body:    `{"alerts":[{"text":"Successfully logged in.","level":"success"}]}`,
			cookies: map[string]string{"mojolicious": "abc"},
		},
		"mojolicious and access_token cookies": {
			status: 200, header: cookieHeader("mojolicious=abc; Path=/; HttpOnly", "access_token=eyJ.x.y; Path=/; HttpOnly"),
			cookies: map[string]string{"mojolicious": "abc", "access_token": "eyJ.x.y"},
		},
		"deleted cookies are not kept": {
			status: 200, header: cookieHeader("mojolicious=abc; Path=/", "old=gone; Max-Age=0"),
			cookies: map[string]string{"mojolicious": "abc"},
		},
		"200 without a cookie": {
			status: 200, body: `{"alerts":[{"text":"Successfully logged in.","level":"success"}]}`,
			kind: backend.KindTransient, message: `Traffic Ops login as user "admin" answered HTTP 200 without a session cookie`,
		},
		"401 wrong password": {
			status: 401, body: `{"alerts":[{"text":"Invalid username or password.","level":"error"}]}`,
			kind: backend.KindAuthentication, message: `Traffic Ops login as user "admin" failed: HTTP 401: Invalid username or password.`,
		},
		"400 is a refused login, never a failed task": {
			status: 400, body: `{"alerts":[{"text":"password: cannot be blank.","level":"error"}]}`,
			kind: backend.KindAuthentication, message: `failed: HTTP 400: password: cannot be blank.`,
		},
		"404 is a wrong URL or API version": {
			status: 404, body: `{"alerts":[{"text":"Not Found","level":"error"}]}`,
			kind: backend.KindInvalidConfig, message: `failed: HTTP 404: Not Found: check spec.url and spec.trafficOps.apiVersion`,
		},
		"503 is transient": {
			status: 503, body: `upstream down`,
			kind: backend.KindTransient, message: `Traffic Ops login as user "admin" failed: vendor answered HTTP 503`,
		},
		"302 is not the documented answer": {
			status: 302, body: ``,
			kind: backend.KindTransient, message: `unexpected status`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			c, err := parseLoginReply(&backend.Response{StatusCode: tc.status, Header: tc.header, Body: []byte(tc.body)}, `login as user "admin"`)
			if tc.kind == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(c.values).To(Equal(tc.cookies))
				return
			}
			e, ok := backend.AsError(err)
			g.Expect(ok).To(BeTrue(), "error %v is a *backend.Error", err)
			g.Expect(e.Kind).To(Equal(tc.kind))
			g.Expect(e.Message).To(ContainSubstring(tc.message))
		})
	}
}

func TestCookiesTakeReissuedValuesOfTheirOwnNamesOnly(t *testing.T) {
	g := NewWithT(t)
	c := newCookies([]*http.Cookie{{Name: "mojolicious", Value: "v1"}, {Name: "access_token", Value: "t1"}})
	c.refresh(http.Header{"Set-Cookie": {"mojolicious=v2; Max-Age=3600", "tracking=x", "access_token=; Max-Age=-1"}})
	g.Expect(c.values).To(Equal(map[string]string{"mojolicious": "v2", "access_token": "t1"}))

	req, _ := http.NewRequest(http.MethodGet, "http://to.example/", nil)
	c.addTo(req)
	g.Expect(req.Cookies()).To(ConsistOf(
		HaveField("Value", "v2"),
		HaveField("Value", "t1"),
	))
}

// FuzzParseStatusReply: no answer, however malformed, panics the parser; every failure is a *backend.Error.
func FuzzParseStatusReply(f *testing.F) {
	f.Add(200, []byte(docExample))
	f.Add(200, []byte(`{"response":{"id":1,"status":"SUCCEEDED","start_time":"2021-02-18T17:13:56.352261Z","end_time":"2021-02-18T17:15:01.005Z","message":"done"}}`))
	f.Add(200, []byte(`{"response":{"id":1,"status":"PENDING","start_time":"2021-02-18T17:13:56.352261Z","message":"Async job has started."}}`))
	f.Add(400, []byte(`{"alerts":[{"text":"id must be an integer","level":"error"}]}`))
	f.Add(401, []byte(`{"alerts":[{"text":"unauthorized, please log in.","level":"error"}]}`))
	f.Add(403, []byte(`{"alerts":[{"text":"missing required Permissions: ASYNC-STATUS:READ","level":"error"}]}`))
	f.Add(404, []byte(`{"alerts":[{"text":"Not Found","level":"error"}]}`))
	f.Add(500, []byte(`{"alerts":[{"text":"Internal Server Error","level":"error"}]}`))
	f.Add(200, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		obs, err := parseStatusReply(&backend.Response{StatusCode: status, Body: body})
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error %v is not a *backend.Error", err)
			}
			return
		}
		if obs.Phase == "" || strings.ContainsAny(obs.Message, "\n\r") {
			t.Fatalf("observation %+v has no phase or a multi-line message", obs)
		}
	})
}

// FuzzParseLoginReply: no login answer panics the parser; every failure is a *backend.Error.
func FuzzParseLoginReply(f *testing.F) {
	f.Add(200, "mojolicious=abc; Path=/; HttpOnly", []byte(`{"alerts":[{"text":"Successfully logged in.","level":"success"}]}`))
	f.Add(200, "access_token=eyJ.x.y; Path=/; Max-Age=3600", []byte(`{"alerts":[]}`))
	f.Add(401, "", []byte(`{"alerts":[{"text":"Invalid username or password.","level":"error"}]}`))
	f.Add(401, "", []byte(`{"alerts":[{"text":"Invalid token. Please contact your administrator.","level":"error"}]}`))
	f.Add(404, "", []byte(`{"alerts":[{"text":"Not Found","level":"error"}]}`))
	f.Add(500, "", []byte(`not json`))
	f.Fuzz(func(t *testing.T, status int, setCookie string, body []byte) {
		c, err := parseLoginReply(&backend.Response{StatusCode: status, Header: http.Header{"Set-Cookie": {setCookie}}, Body: body}, "token login")
		if err != nil {
			if _, ok := backend.AsError(err); !ok {
				t.Fatalf("error %v is not a *backend.Error", err)
			}
			return
		}
		if c.len() == 0 {
			t.Fatal("a login without cookies succeeded")
		}
	})
}
