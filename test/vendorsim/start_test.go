package vendorsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/internal/backend/apigateway/aksk"
)

var testCreds = Credentials{Token: "tok", Username: "user", Password: "pass", AccessKey: "AK", SecretKey: "SK"}

type simClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func newSimClient(t *testing.T) (*Simulator, *simClient) {
	t.Helper()
	sim, base := Serve(t, testCreds)
	jar, _ := cookiejar.New(nil)
	return sim, &simClient{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 5 * time.Second}}
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (c *simClient) do(method, path string, header http.Header, body []byte) (reply, error) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}, nil
}

func (c *simClient) must(method, path string, header http.Header, body []byte) reply {
	c.t.Helper()
	r, err := c.do(method, path, header, body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func jsonHeader(kv ...string) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func field(t *testing.T, body, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	s, _ := m[name].(string)
	return s
}

const genericBody = `{"name":"report","size":3}`

func TestEveryVendorStartCreatesAJobItsStatusEndpointAnswers(t *testing.T) {
	sim, c := newSimClient(t)

	// API Gateway import: multipart with the file part file_name.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("is_create_group", "true")
	fw, _ := mw.CreateFormFile("file_name", "petstore.json")
	_, _ = fw.Write([]byte(`{"swagger":"2.0"}`))
	_ = mw.Close()
	r := c.must("POST", "/v2/p1/apigw/instances/i1/openapi/async-import",
		http.Header{"Content-Type": {mw.FormDataContentType()}, "X-Auth-Token": {"tok"}}, form.Bytes())
	apigID := field(t, r.body, "task_id")
	if r.status != http.StatusAccepted || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(apigID) {
		t.Fatalf("async-import: %d %s", r.status, r.body)
	}
	poll := c.must("GET", "/v2/p1/apigw/instances/i1/async-tasks/"+apigID, http.Header{"X-Auth-Token": {"tok"}}, nil)
	if field(t, poll.body, "task_status") != "processing" || field(t, poll.body, "task_type") != "import_api" {
		t.Errorf("import task poll: %s", poll.body)
	}
	r = c.must("POST", "/v2/p1/apigw/instances/i1/openapi/async-export?oas_version=3.0", jsonHeader("X-Auth-Token", "tok"),
		[]byte(`{"env_id":"DEFAULT_ENVIRONMENT_RELEASE_ID","group_id":"c77f5e81d9cb4424bf704ef2b0ac7600","define":"all"}`))
	exportID := field(t, r.body, "task_id")
	poll = c.must("GET", "/v2/p1/apigw/instances/i1/async-tasks/"+exportID, http.Header{"X-Auth-Token": {"tok"}}, nil)
	if r.status != http.StatusAccepted || field(t, poll.body, "task_type") != "export_api" {
		t.Errorf("async-export: %d %s, poll %s", r.status, r.body, poll.body)
	}

	// Network Insight.
	r = c.must("POST", "/api/ni/groups/discovered-applications/save", jsonHeader("Authorization", "NetworkInsight tok"),
		[]byte(`{"discovered_apps":[{"source_entity_id":"18203:565:2854896465419091802"}],"discovery_type":"FLOW_BASED_DISCOVERY"}`))
	niID := field(t, r.body, "request_id")
	if r.status != http.StatusOK || !strings.HasPrefix(niID, "TASK_PROGRESS_application.APP_BULK_SAVE.") ||
		field(t, r.body, "callback_API") != "api/ni/groups/task/progress/"+niID+"/" {
		t.Fatalf("discovered-applications/save: %d %s", r.status, r.body)
	}
	poll = c.must("GET", "/"+field(t, r.body, "callback_API"), http.Header{"Authorization": {"NetworkInsight tok"}}, nil)
	if field(t, poll.body, "status") != "IN_PROGRESS" {
		t.Errorf("NI poll: %s", poll.body)
	}

	// Traffic Ops: cookie login, then ACME.
	if r := c.must("POST", "/api/5.0/user/login", jsonHeader(), []byte(`{"u":"user","p":"pass"}`)); r.status != 200 {
		t.Fatalf("login: %d", r.status)
	}
	r = c.must("POST", "/api/5.0/deliveryservices/sslkeys/generate/acme", jsonHeader(),
		[]byte(`{"authType":"Lets Encrypt","key":"ds-01","version":"3","hostname":"tr.ds-01.ott.kabletown.com","cdn":"test-cdn"}`))
	loc := r.header.Get("Location")
	if r.status != http.StatusAccepted || !regexp.MustCompile(`^/api/5\.0/async_status/[0-9]+$`).MatchString(loc) ||
		!strings.Contains(r.body, "Beginning async ACME call for ds-01 using Lets Encrypt. This may take a few minutes. Status updates can be found here: "+loc) {
		t.Fatalf("acme: %d %v %s", r.status, r.header, r.body)
	}
	if poll = c.must("GET", loc, nil, nil); !strings.Contains(poll.body, `"status":"PENDING"`) {
		t.Errorf("TO poll: %s", poll.body)
	}

	// ZStack, with the job's UUID chosen by the caller.
	uuid := strings.Repeat("ab", 16)
	r = c.must("POST", "/zstack/v1/vm-instances", jsonHeader("Authorization", "OAuth tok", "X-Job-UUID", uuid),
		[]byte(`{"params":{"name":"vm1","instanceOfferingUuid":"a","imageUuid":"b","l3NetworkUuids":["c"]}}`))
	if r.status != http.StatusAccepted || field(t, r.body, "location") != c.base+"/zstack/v1/api-jobs/"+uuid {
		t.Fatalf("zstack: %d %s", r.status, r.body)
	}
	if poll = c.must("GET", "/zstack/v1/api-jobs/"+uuid, http.Header{"Authorization": {"OAuth tok"}}, nil); poll.status != http.StatusAccepted {
		t.Errorf("zstack poll: %d %s", poll.status, poll.body)
	}

	// The generic job API.
	r = c.must("POST", "/generic/v1/jobs", jsonHeader("Authorization", "Bearer tok"), []byte(genericBody))
	jobID := field(t, r.body, "id")
	if r.status != http.StatusCreated || r.header.Get("Location") != "/generic/v1/jobs/"+jobID {
		t.Fatalf("generic: %d %v %s", r.status, r.header, r.body)
	}
	for _, want := range []string{"running", "succeeded"} {
		poll = c.must("GET", "/generic/v1/jobs/"+jobID, http.Header{"Authorization": {"Bearer tok"}}, nil)
		if got := field(t, poll.body, "status"); got != want {
			t.Errorf("generic poll: status %q, want %q (%s)", got, want, poll.body)
		}
	}

	for match, want := range map[string]int{"": 6, "APIGateway": 2, APIGatewayImport: 1, NetworkInsightSave: 1, TrafficOpsACME: 1,
		ZStackAsyncAPI: 1, HTTPVendor: 1, "/zstack/v1/vm-instances": 1, "/generic/v1/jobs": 1} {
		if got := sim.StartRequests(match); got != want {
			t.Errorf("StartRequests(%q) = %d, want %d", match, got, want)
		}
		if got := sim.JobsCreated(match); got != want {
			t.Errorf("JobsCreated(%q) = %d, want %d", match, got, want)
		}
	}
	// Two polls took the generic job through its script; the others run.
	if got := sim.RunningJobs(""); got != 5 {
		t.Errorf("RunningJobs = %d, want 5", got)
	}
	if got := sim.MaxRunningJobs(""); got != 6 {
		t.Errorf("MaxRunningJobs = %d, want 6", got)
	}
}

func TestStartsAreRefusedAsTheVendorsDocumentIt(t *testing.T) {
	_, c := newSimClient(t)
	cases := map[string]struct {
		method, path string
		header       http.Header
		body         string
		wantStatus   int
		wantBody     string
	}{
		"API Gateway import without the file part": {"POST", "/v2/p/apigw/instances/i/openapi/async-import",
			http.Header{"X-Auth-Token": {"tok"}, "Content-Type": {"application/json"}}, `{}`, 400,
			`{"error_code":"APIG.2001","error_msg":"The request parameters must be specified,parameterName:file_name. Please refer to the support documentation"}`},
		"API Gateway wrong token": {"POST", "/v2/p/apigw/instances/i/openapi/async-export", jsonHeader("X-Auth-Token", "wrong"), `{}`, 401,
			`{"error_code":"APIG.1002","error_msg":"Incorrect token or token resolution failed"}`},
		"API Gateway export without env_id": {"POST", "/v2/p/apigw/instances/i/openapi/async-export", jsonHeader("X-Auth-Token", "tok"), `{"group_id":"g"}`, 400,
			`{"error_code":"APIG.2001","error_msg":"The request parameters must be specified,parameterName:env_id. Please refer to the support documentation"}`},
		"ZStack malformed X-Job-UUID": {"POST", "/zstack/v1/vm-instances", jsonHeader("Authorization", "OAuth tok", "X-Job-UUID", "abc"), `{}`, 400,
			"Invalid header[X-Job-UUID], it must be a UUID with '-' stripped"},
		"ZStack expired session": {"POST", "/zstack/v1/vm-instances", jsonHeader("Authorization", "OAuth old"), `{}`, 503,
			`{"error":{"code":"ID.1001","description":"Invalid session","details":"Session expired"}}`},
		"Traffic Ops without a session": {"POST", "/api/5.0/deliveryservices/sslkeys/generate/acme", jsonHeader(), `{}`, 401,
			`{"alerts":[{"level":"error","text":"unauthorized, please log in."}]}`},
		"Network Insight empty save": {"POST", "/api/ni/groups/discovered-applications/save", jsonHeader("Authorization", "NetworkInsight tok"), `{"discovered_apps":[]}`, 400,
			`{"code":400,"details":[{"code":400,"message":"discovered_apps must list at least one application to save","target":["body"]}],"message":"Bad request"}`},
		"generic without credentials": {"POST", "/generic/v1/jobs", jsonHeader(), `{}`, 401, `"title":"Unauthorized"`},
		"generic empty key":           {"POST", "/generic/v1/jobs", jsonHeader("Authorization", "Bearer tok", "Idempotency-Key", `""`), `{}`, 400, `"title":"Idempotency-Key is invalid"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := c.must(tc.method, tc.path, tc.header, []byte(tc.body))
			if r.status != tc.wantStatus || !strings.Contains(strings.TrimSpace(r.body), tc.wantBody) {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	t.Run("Traffic Ops missing fields", func(t *testing.T) {
		c.must("POST", "/api/4.1/user/login", jsonHeader(), []byte(`{"u":"user","p":"pass"}`))
		r := c.must("POST", "/api/4.1/deliveryservices/sslkeys/generate/acme", jsonHeader(), []byte(`{"key":"ds-01"}`))
		want := `{"alerts":[{"level":"error","text":"parsing request: missing fields: cdn required; version required; hostname required"}]}`
		if r.status != 400 || strings.TrimSpace(r.body) != want {
			t.Errorf("got %d %s", r.status, r.body)
		}
	})
}

func TestAPIGatewaySignedStartCoversTheBody(t *testing.T) {
	sim, c := newSimClient(t)
	body := []byte(`{"env_id":"e","group_id":"g"}`)
	send := func(signedBody []byte) int {
		req, _ := http.NewRequest("POST", c.base+"/v2/p1/apigw/instances/i1/openapi/async-export", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Project-Id", "p1")
		aksk.Sign(req, signedBody, "AK", "SK", time.Now())
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := send(body); got != http.StatusAccepted {
		t.Errorf("signed over the body sent: %d, want 202", got)
	}
	if got := send([]byte(`{"env_id":"other","group_id":"g"}`)); got != http.StatusUnauthorized {
		t.Errorf("signed over another body: %d, want 401", got)
	}
	if got := sim.JobsCreated(APIGatewayExport); got != 1 {
		t.Errorf("jobs = %d, want 1", got)
	}
}

func TestZStackRefusesARepeatedJobUUIDUntilTheJobIsPurged(t *testing.T) {
	sim, c := newSimClient(t)
	uuid := strings.Repeat("0f", 16)
	h := jsonHeader("Authorization", "OAuth tok", "X-Job-UUID", uuid)
	if r := c.must("POST", "/zstack/v1/vm-instances", h, []byte(`{"params":{}}`)); r.status != 202 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	r := c.must("POST", "/zstack/v1/vm-instances", h, []byte(`{"params":{}}`))
	if r.status != 400 || r.body != "Duplicate job uuid["+uuid+"]" {
		t.Errorf("repeat: %d %q", r.status, r.body)
	}
	if !sim.ExpireJob(uuid) {
		t.Fatal("ExpireJob found no job")
	}
	poll := c.must("GET", "/zstack/v1/api-jobs/"+uuid, http.Header{"Authorization": {"OAuth tok"}}, nil)
	if poll.status != 404 || poll.body != "the job has been expired" {
		t.Errorf("poll of a purged job: %d %q", poll.status, poll.body)
	}
	if r := c.must("POST", "/zstack/v1/vm-instances", h, []byte(`{"params":{}}`)); r.status != 202 {
		t.Errorf("after the purge: %d %s", r.status, r.body)
	}
	if got, want := [3]int{sim.StartRequests(ZStackAsyncAPI), sim.KeyRequests(uuid), sim.KeyJobs(uuid)}, [3]int{3, 3, 2}; got != want {
		t.Errorf("requests, key requests, key jobs = %v, want %v", got, want)
	}
}

func TestIdempotencyKeyFollowsTheIETFDraft(t *testing.T) {
	sim, c := newSimClient(t)
	h := jsonHeader("Authorization", "Bearer tok", "Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
	first := c.must("POST", "/generic/v1/jobs", h, []byte(genericBody))
	again := c.must("POST", "/generic/v1/jobs", h, []byte(genericBody))
	if first.status != 201 || again.status != 201 || again.body != first.body {
		t.Errorf("repeat with the same body: %d %s, then %d %s; want the same 201", first.status, first.body, again.status, again.body)
	}
	other := c.must("POST", "/generic/v1/jobs", h, []byte(`{"name":"other"}`))
	if other.status != http.StatusUnprocessableEntity || !strings.Contains(other.body, "Idempotency-Key is already used") ||
		other.header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("reuse with another body: %d %s", other.status, other.body)
	}
	key := "8e03978e-40d5-43e8-bc93-6894a57f9324"
	if got, want := [3]int{sim.KeyRequests(key), sim.KeyJobs(key), sim.JobsCreated(HTTPJobs)}, [3]int{3, 1, 1}; got != want {
		t.Errorf("key requests, key jobs, jobs = %v, want %v", got, want)
	}

	for _, create := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang, Create %v", create), func(t *testing.T) {
			path := fmt.Sprintf("/generic/v1/queues/hang-%v/jobs", create)
			hk := jsonHeader("Authorization", "Bearer tok", "Idempotency-Key", "k-"+path)
			sim.InjectStartFaults(path, 1, Fault{Hang: true, Create: create})
			done := make(chan error, 1)
			// A connection of its own: net/http resends by itself a request with an Idempotency-Key whose
			// reused connection closes without an answer, which would be a second request.
			go func() {
				req, _ := http.NewRequest("POST", c.base+path, strings.NewReader(genericBody))
				req.Header = hk.Clone()
				req.Close = true
				resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
				if err == nil {
					_ = resp.Body.Close()
				}
				done <- err
			}()
			waitFor(t, func() bool { return sim.HungRequests(path) == 1 })
			busy := c.must("POST", path, hk, []byte(genericBody))
			if busy.status != http.StatusConflict || !strings.Contains(busy.body, "A request is outstanding for this Idempotency-Key") {
				t.Errorf("while the first hangs: %d %s", busy.status, busy.body)
			}
			sim.ReleaseHung()
			if err := <-done; err == nil {
				t.Error("the hung request got an answer")
			}
			after := c.must("POST", path, hk, []byte(genericBody))
			if after.status != 201 {
				t.Errorf("after the hang: %d %s", after.status, after.body)
			}
			if got := sim.JobsCreated(path); got != 1 {
				t.Errorf("jobs = %d, want exactly 1", got)
			}
			recs := sim.StartRecords(path)
			if len(recs) != 3 || recs[0].Status != 0 || recs[1].Status != 409 || recs[2].Status != 201 {
				t.Errorf("records: %+v", recs)
			}
			if create && (recs[0].JobID == "" || !strings.Contains(after.body, recs[0].JobID)) {
				t.Errorf("the resend did not answer the job the hung request created: %s, %q", after.body, recs[0].JobID)
			}
			if !create && recs[2].JobID == "" {
				t.Error("the resend created no job")
			}
		})
	}
}

func TestFaultsReplaceTheNextAnswers(t *testing.T) {
	sim, c := newSimClient(t)
	h := jsonHeader("Authorization", "Bearer tok")
	sim.InjectStartFaults(HTTPJobs, 1, Fault{Status: 429, RetryAfter: 7})
	sim.InjectStartFaults(HTTPJobs, 1, Fault{Status: 503, Create: true})
	sim.InjectStartFaults(HTTPJobs, 1, Fault{NoID: true})
	sim.InjectStartFaults(HTTPJobs, 1, Fault{Reset: true})
	sim.InjectStartFaults(HTTPJobs, 1, Fault{Reset: true, Create: true})

	r := c.must("POST", "/generic/v1/jobs", h, []byte(genericBody))
	if r.status != 429 || r.header.Get("Retry-After") != "7" || !strings.Contains(r.body, `"status":429`) {
		t.Errorf("429: %d %v %s", r.status, r.header, r.body)
	}
	if r = c.must("POST", "/generic/v1/jobs", h, []byte(genericBody)); r.status != 503 {
		t.Errorf("503: %d", r.status)
	}
	if r = c.must("POST", "/generic/v1/jobs", h, []byte(genericBody)); r.status != 201 || strings.Contains(r.body, `"id"`) {
		t.Errorf("no ID: %d %s", r.status, r.body)
	}
	for range 2 {
		if _, err := c.do("POST", "/generic/v1/jobs", h, []byte(genericBody)); err == nil {
			t.Error("a reset answered")
		}
	}
	if r = c.must("POST", "/generic/v1/jobs", h, []byte(genericBody)); r.status != 201 {
		t.Errorf("after the faults: %d", r.status)
	}
	var created []bool
	for _, rec := range sim.StartRecords(HTTPJobs) {
		created = append(created, rec.JobID != "")
	}
	if want := []bool{false, true, true, false, true, true}; fmt.Sprint(created) != fmt.Sprint(want) {
		t.Errorf("jobs created per request = %v, want %v", created, want)
	}

	// Faults answer each vendor's documented error body.
	sim.InjectStartFaults(ZStackAsyncAPI, 1, Fault{Status: 503})
	r = c.must("POST", "/zstack/v1/vm-instances", jsonHeader("Authorization", "OAuth tok"), []byte(`{}`))
	if r.status != 503 || !strings.Contains(r.body, `"code":"SYS.1000"`) {
		t.Errorf("ZStack 503: %d %s", r.status, r.body)
	}
	sim.InjectStartFaults("/v2/p9/apigw/instances/i/openapi/async-export", 1, Fault{Status: 500})
	r = c.must("POST", "/v2/p9/apigw/instances/i/openapi/async-export", jsonHeader("X-Auth-Token", "tok"), []byte(`{"env_id":"e","group_id":"g"}`))
	if r.status != 500 || strings.TrimSpace(r.body) != `{"error_code":"APIG.9999","error_msg":"System error"}` {
		t.Errorf("API Gateway 500: %d %s", r.status, r.body)
	}
}

func TestHungRequestsEndWithTheTest(t *testing.T) {
	var sim *Simulator
	var c *simClient
	errs := make(chan error, 1)
	t.Run("hangs", func(t *testing.T) {
		sim, c = newSimClient(t)
		sim.InjectStartFaults(HTTPVendor, 1, Fault{Hang: true})
		go func() {
			_, err := c.do("POST", "/generic/v1/jobs", jsonHeader("Authorization", "Bearer tok"), []byte(genericBody))
			errs <- err
		}()
		waitFor(t, func() bool { return sim.HungRequests("") == 1 })
		// The subtest ends with the request held: Serve's cleanup releases it before closing the server.
	})
	if err := <-errs; err == nil {
		t.Error("the hung request got an answer")
	}
}

func TestMaxRunningJobsCountsOverlapsOfTimedJobs(t *testing.T) {
	sim, c := newSimClient(t)
	sim.SetJobScript(HTTPVendor, JobScript{Every: 30 * time.Millisecond, Steps: []Step{{Phase: Running}, {Phase: Succeeded}}})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 5)
	for range 100 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			r := c.must("POST", "/generic/v1/jobs", jsonHeader("Authorization", "Bearer tok"), []byte(genericBody))
			id := field(t, r.body, "id")
			waitFor(t, func() bool {
				p := c.must("GET", "/generic/v1/jobs/"+id, http.Header{"Authorization": {"Bearer tok"}}, nil)
				return field(t, p.body, "status") == "succeeded"
			})
		})
	}
	wg.Wait()
	if got := sim.JobsCreated(HTTPJobs); got != 100 {
		t.Errorf("jobs = %d, want 100", got)
	}
	if got := sim.MaxRunningJobs(HTTPJobs); got < 1 || got > 5 {
		t.Errorf("MaxRunningJobs = %d, want 1..5", got)
	}
	if got := sim.RunningJobs(""); got != 0 {
		t.Errorf("RunningJobs = %d, want 0", got)
	}
}

func TestInjectStartFaultsRefusesAnAmbiguousFault(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	New(testCreds).InjectStartFaults("", 1, Fault{Hang: true, Reset: true})
}

// waitFor polls cond with gomega's Eventually, every 5 ms for at most 5 s, until it holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	NewWithT(t).Eventually(cond).WithTimeout(5 * time.Second).WithPolling(5 * time.Millisecond).Should(BeTrue())
}
