package vendorsim

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ZStack: the API job (GET /zstack/v1/api-jobs/{apiId}), "Get Task Progress (GetTaskProgress)"
// (GET /zstack/v1/task-progresses/{apiId}) and the session login (PUT /zstack/v1/accounts/login,
// LogInByAccount), as the ZStack Cloud API reference describes them:
//   - login takes {"logInByAccount": {"accountName", "password": hex SHA-512}} and answers {"inventory": {...}};
//   - requests carry "Authorization: OAuth <session uuid>"; an expired or unknown session answers 503 with
//     error code ID.1001, a missing or malformed header 400 with plain text;
//   - api-jobs answers 202 {} while running, 200 with the result, 503 {"error": {...}} for a failed job, 404
//     plain text "the job has been expired" for an unknown job;
//   - task-progresses answers {"inventories": [...]}, and 200 {"inventories": []} for an unknown id.
//
// Assumed where the documentation is silent: a wrong account name or password answers 503 with code ID.1000
// ("wrong account name or password", as ZStack's AccountManager words it); the plain-text bodies of the 400
// answers are our own wording; a Step's HTTPStatus 404 answers the documented plain text, 400/401/403 plain
// text, and any other status the documented error body with code SYS.1000, so a bare 503 step reads as a
// failed job, exactly as ZStack's own 503 does (add RetryAfter for an overloaded server). Progress records are
// given for Running steps with a Progress or Message: a root Task record (content = Message) and a Progress
// record (content = the percent), root first as ?all=false answers; times are fixed so that repeated answers
// are identical, and written as Java writes a double (1.510669257141E12). The all parameter is ignored.

const zstackVendor = "ZStack"

// zstackRootTaskName is the taskName of the simulated jobs' root record, an API message class as in the docs.
const zstackRootTaskName = "org.zstack.header.vm.APICreateVmInstanceMsg"

// zstackEpochMillis is the documentation example's record time, used for every simulated root record.
const zstackEpochMillis = 1510669257141

func (s *Simulator) registerZStack(mux *http.ServeMux) {
	mux.HandleFunc("PUT /zstack/v1/accounts/login", s.zstackLogin)
	mux.HandleFunc("GET /zstack/v1/api-jobs/{apiId}", s.zstackAPIJob)
	mux.HandleFunc("GET /zstack/v1/task-progresses/{apiId}", s.zstackTaskProgress)
	// Every API but the login and GET queries is asynchronous (PUT /zstack/v1/accounts/login is more specific).
	mux.HandleFunc("POST /zstack/v1/{resource...}", s.zstackStart)
	mux.HandleFunc("PUT /zstack/v1/{resource...}", s.zstackStart)
}

func (s *Simulator) zstackLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		LogInByAccount *struct {
			AccountName string `json:"accountName"`
			Password    string `json:"password"`
		} `json:"logInByAccount"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.LogInByAccount == nil {
		zstackPlain(w, http.StatusBadRequest, "invalid request body, logInByAccount is required")
		return
	}
	sum := sha512.Sum512([]byte(s.creds.Password))
	if s.creds.Username == "" || req.LogInByAccount.AccountName != s.creds.Username ||
		req.LogInByAccount.Password != hex.EncodeToString(sum[:]) {
		zstackError(w, http.StatusServiceUnavailable, "ID.1000", "Authentication error", "wrong account name or password")
		return
	}
	session := s.issueSession(zstackVendor)
	writeJSON(w, http.StatusOK, map[string]any{"inventory": map[string]string{
		"uuid":        session,
		"accountUuid": "36c27e8ff05c4780bf6d2fa65700f22e",
		"userUuid":    "36c27e8ff05c4780bf6d2fa65700f22e",
		"expiredDate": "Nov 14, 2017 10:20:57 PM",
		"createDate":  "Nov 14, 2017 8:20:57 PM",
	}})
}

// zstackAuthorized checks the OAuth header and answers the refusal itself when it fails.
func (s *Simulator) zstackAuthorized(w http.ResponseWriter, r *http.Request) bool {
	header := r.Header.Get("Authorization")
	if header == "" {
		zstackPlain(w, http.StatusBadRequest, "missing header Authorization")
		return false
	}
	session, ok := strings.CutPrefix(header, "OAuth ")
	if !ok {
		zstackPlain(w, http.StatusBadRequest, "Authorization header must be in the format of 'OAuth session-uuid'")
		return false
	}
	if !s.validSession(zstackVendor, session) {
		zstackError(w, http.StatusServiceUnavailable, "ID.1001", "Invalid session", "Session expired")
		return false
	}
	return true
}

func (s *Simulator) zstackAPIJob(w http.ResponseWriter, r *http.Request) {
	if !s.zstackAuthorized(w, r) {
		return
	}
	step, ok := s.poll(r.PathValue("apiId"))
	if !ok {
		zstackPlain(w, http.StatusNotFound, "the job has been expired")
		return
	}
	if answerFault(w, r, step, func(status int) { zstackStepError(w, status) }) {
		return
	}
	switch step.Phase {
	case Succeeded:
		result := step.Result
		if result == "" {
			result = "{}"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(result))
	case Failed:
		if step.Result != "" { // a full error body of the test's own
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(step.Result))
			return
		}
		zstackError(w, http.StatusServiceUnavailable, "SYS.1000", "An internal error happened in system", step.Message)
	default:
		writeJSON(w, http.StatusAccepted, map[string]any{})
	}
}

func (s *Simulator) zstackTaskProgress(w http.ResponseWriter, r *http.Request) {
	if !s.zstackAuthorized(w, r) {
		return
	}
	id := r.PathValue("apiId")
	records := []json.RawMessage{}
	// task-progresses is read alongside api-jobs, which alone counts polls.
	if step, ok := s.peek(id); ok && step.Phase == Running && step.HTTPStatus == 0 && step.RawBody == "" &&
		(step.Progress > 0 || step.Message != "") {
		root := id + "-root"
		records = append(records,
			zstackRecord(map[string]any{"taskUuid": root, "taskName": zstackRootTaskName, "type": "Task", "content": step.Message}, 0),
			zstackRecord(map[string]any{"taskUuid": id + "-progress", "taskName": zstackRootTaskName, "parentUuid": root,
				"type": "Progress", "content": strconv.Itoa(step.Progress)}, time.Duration(step.Progress)*time.Second),
		)
	}
	writeJSON(w, http.StatusOK, map[string]any{"inventories": records})
}

// zstackRecord encodes a progress record with its time after the fixed epoch, spelt as Java spells a double.
func zstackRecord(fields map[string]any, after time.Duration) json.RawMessage {
	ms := float64(zstackEpochMillis + after.Milliseconds())
	fields["time"] = json.Number(strings.Replace(strconv.FormatFloat(ms, 'E', -1, 64), "E+", "E", 1))
	b, _ := json.Marshal(fields)
	return b
}

// zstackStepError answers a scripted error status as ZStack would.
func zstackStepError(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusNotFound:
		zstackPlain(w, status, "the job has been expired")
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		zstackPlain(w, status, http.StatusText(status))
	default:
		zstackError(w, status, "SYS.1000", "An internal error happened in system", http.StatusText(status))
	}
}

// zstackError writes the documented error body. Fields ZStack leaves null are left out, as its JSON writer does.
func zstackError(w http.ResponseWriter, status int, code, description, details string) {
	e := map[string]string{"code": code, "description": description}
	if details != "" {
		e["details"] = details
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func zstackPlain(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

// ZStack starts: any asynchronous API call (POST or PUT /zstack/v1/{resource...}, e.g. POST
// /zstack/v1/vm-instances, CreateVmInstance) creates an API job, as "RESTful API: asynchronous API"
// (zstack rest/src/main/resources/doc/RestIntroduction_zh_cn.md) and RestServer.java describe it:
//   - the call answers 202 {"location": "<base>/zstack/v1/api-jobs/<uuid>", "apiTimeout": <ms>}; the job is
//     then polled at that location (zstackAPIJob) and its progress at task-progresses/<uuid>;
//   - the caller may choose the job's UUID with the header X-Job-UUID, which must be a UUID with its '-'
//     stripped (32 characters; RestServer checks the length only): otherwise 400, plain text "Invalid
//     header[X-Job-UUID], it must be a UUID with '-' stripped";
//   - a POST, PUT or DELETE whose X-Job-UUID names a job ZStack still holds is refused with 400 and the plain
//     text "Duplicate job uuid[<uuid>]" (RestServer.handleApi; not in the API documentation, which names
//     only the 400 for a malformed UUID; the SDK's test DuplicateJobUuidCase expects the text). ZStack
//     deletes finished jobs after completedApi.expiredPeriod (3 hours by default): ExpireJob does it at once,
//     after which the UUID is taken again;
//   - the session is checked before the UUID (401/503 ID.1001 as for every request).
//
// Assumed where the documentation is silent: a body that is not a JSON object answers 400 plain text (ZStack
// does not document it); apiTimeout is 1,800,000 ms (ZStack's default API timeout; the real value depends on
// the API); the API's own parameters are not checked (a real CreateVmInstance fails the job, 503 on the
// job's poll, when they are wrong: script that with SetJobScript). A Fault's Status answers as a Step's
// HTTPStatus does (zstackStepError); NoID answers 202 {}.

// zstackAPITimeoutMillis is the apiTimeout of the simulated 202 answers.
const zstackAPITimeoutMillis = 1800000

func (s *Simulator) zstackStart(w http.ResponseWriter, r *http.Request) {
	call, ok := s.beginStart(w, r, ZStackAsyncAPI)
	if !ok {
		return
	}
	w = call.w
	jobUUID := r.Header.Get("X-Job-UUID")
	if jobUUID != "" {
		call.setKey(jobUUID)
	}
	if !s.zstackAuthorized(w, r) {
		return
	}
	if r.PathValue("resource") == "" {
		zstackPlain(w, http.StatusNotFound, "no api mapping to "+r.URL.Path)
		return
	}
	if body := strings.TrimSpace(string(call.rec.Body)); body != "" && !isJSONObject(body) {
		zstackPlain(w, http.StatusBadRequest, "the body is not a JSON object")
		return
	}
	if jobUUID != "" {
		if len(jobUUID) != 32 {
			zstackPlain(w, http.StatusBadRequest, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
			return
		}
	}
	call.serve(func() startAnswer {
		id := jobUUID
		if id == "" {
			id = randomHex(16)
		}
		if !s.createJob(call.rec, id, "") {
			return startAnswer{status: http.StatusBadRequest, header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
				body: []byte("Duplicate job uuid[" + id + "]")}
		}
		body, _ := json.Marshal(map[string]any{"location": baseURL(r) + "/zstack/v1/api-jobs/" + id, "apiTimeout": zstackAPITimeoutMillis})
		return jsonAnswer(http.StatusAccepted, body)
	}, zstackStepError, func(startAnswer) startAnswer { return jsonAnswer(http.StatusAccepted, []byte("{}")) })
}

func isJSONObject(text string) bool {
	var v map[string]any
	return json.Unmarshal([]byte(text), &v) == nil && v != nil
}
