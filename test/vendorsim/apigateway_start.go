package vendorsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
)

// API Gateway starts, as the Open Telekom Cloud and Huawei Cloud API references document them ("Importing
// APIs Asynchronously", ImportApiDefinitionsAsync; "Exporting APIs Asynchronously", ExportApiDefinitionsAsync;
// docs.otc.t-systems.com/api-gateway/api-ref/dedicated_gateway_apis_v2/asynchronous_task_management/):
//   - POST /v2/{project_id}/apigw/instances/{instance_id}/openapi/async-import, multipart/form-data: the file
//     part file_name (mandatory: the Swagger definition, JSON or YAML) and the optional fields
//     is_create_group (default true), group_id (required when is_create_group is false), extend_mode and
//     api_mode (merge or override), simple_mode and mock_mode (booleans);
//   - POST .../openapi/async-export, JSON {env_id, group_id (both required), define (spec, proxy, all, dev),
//     type (json, yaml, yml), version, apis}, query oas_version (2.0 or 3.0);
//   - both answer 202 {"task_id": "<32 hex>"}, the task then polled at .../async-tasks/{task_id} (apigTask,
//     task_type import_api or export_api); errors are {error_code, error_msg}, with the documented examples:
//     400 APIG.3603 "The input data is too long" (import), 400 APIG.2001 "The request parameters must be
//     specified,parameterName:env_id. ..." (export), 401 APIG.1002, 403 APIG.1005, 500 APIG.9999. There is no
//     idempotency key.
//
// Assumed where the documentation is silent: a missing mandatory field answers 400 APIG.2001 naming it (the
// documented wording of that code); a field with a value outside its enumeration or not a boolean answers
// 400 APIG.2012 "Invalid parameter value,parameterName:<name>. Please refer to the support documentation"; a
// body that is not the documented encoding answers 400 APIG.2001 naming file_name (import) or env_id
// (export); the definition's content is not checked. A Fault's Status 429 answers APIG.1101 (as polls do),
// 503 the 500 body with status 503; NoID answers 202 {}.

// apigMissing is the documented APIG.2001 message for a missing parameter.
func apigMissing(name string) string {
	return fmt.Sprintf("The request parameters must be specified,parameterName:%s. Please refer to the support documentation", name)
}

// apigInvalid is APIG.2012's message for a parameter of a wrong value.
func apigInvalid(name string) string {
	return fmt.Sprintf("Invalid parameter value,parameterName:%s. Please refer to the support documentation", name)
}

func apigStartError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "error_msg": msg})
}

// apigStartFault writes the documented error body of a status for a start endpoint; 400 is endpoint-specific.
func apigStartFault(badRequest [2]string) func(w http.ResponseWriter, status int) {
	return func(w http.ResponseWriter, status int) {
		if status == http.StatusBadRequest {
			apigStartError(w, status, badRequest[0], badRequest[1])
			return
		}
		apigError(w, status, "")
	}
}

func apigNoID(startAnswer) startAnswer { return jsonAnswer(http.StatusAccepted, []byte("{}")) }

func (s *Simulator) apigImport(w http.ResponseWriter, r *http.Request) {
	call, ok := s.beginStart(w, r, APIGatewayImport)
	if !ok {
		return
	}
	w = call.w
	if !s.apigAuthorized(r, call.rec.Body) {
		apigError(w, http.StatusUnauthorized, "")
		return
	}
	fields, file, err := readImportForm(r.Header.Get("Content-Type"), call.rec.Body)
	if err != nil || len(file) == 0 {
		apigStartError(w, http.StatusBadRequest, "APIG.2001", apigMissing("file_name"))
		return
	}
	for _, name := range []string{"is_create_group", "simple_mode", "mock_mode"} {
		if v, ok := fields[name]; ok && v != "true" && v != "false" {
			apigStartError(w, http.StatusBadRequest, "APIG.2012", apigInvalid(name))
			return
		}
	}
	for _, name := range []string{"extend_mode", "api_mode"} {
		if v, ok := fields[name]; ok && v != "merge" && v != "override" {
			apigStartError(w, http.StatusBadRequest, "APIG.2012", apigInvalid(name))
			return
		}
	}
	if fields["is_create_group"] == "false" && fields["group_id"] == "" {
		apigStartError(w, http.StatusBadRequest, "APIG.2001", apigMissing("group_id"))
		return
	}
	call.serve(func() startAnswer { return s.apigCreate(call, "import_api") },
		apigStartFault([2]string{"APIG.3603", "The input data is too long"}), apigNoID)
}

func (s *Simulator) apigExport(w http.ResponseWriter, r *http.Request) {
	call, ok := s.beginStart(w, r, APIGatewayExport)
	if !ok {
		return
	}
	w = call.w
	if !s.apigAuthorized(r, call.rec.Body) {
		apigError(w, http.StatusUnauthorized, "")
		return
	}
	var req struct {
		EnvID   *string  `json:"env_id"`
		GroupID *string  `json:"group_id"`
		Define  *string  `json:"define"`
		Type    *string  `json:"type"`
		Version *string  `json:"version"`
		APIs    []string `json:"apis"`
	}
	if err := json.Unmarshal(call.rec.Body, &req); err != nil || req.EnvID == nil || *req.EnvID == "" {
		apigStartError(w, http.StatusBadRequest, "APIG.2001", apigMissing("env_id"))
		return
	}
	if req.GroupID == nil || *req.GroupID == "" {
		apigStartError(w, http.StatusBadRequest, "APIG.2001", apigMissing("group_id"))
		return
	}
	enums := map[string]struct {
		value   *string
		allowed []string
	}{
		"define": {req.Define, []string{"spec", "proxy", "all", "dev"}},
		"type":   {req.Type, []string{"json", "yaml", "yml"}},
	}
	for name, e := range enums {
		if e.value != nil && !slices.Contains(e.allowed, *e.value) {
			apigStartError(w, http.StatusBadRequest, "APIG.2012", apigInvalid(name))
			return
		}
	}
	if v := r.URL.Query(); v.Has("oas_version") && !slices.Contains([]string{"2.0", "3.0"}, v.Get("oas_version")) {
		apigStartError(w, http.StatusBadRequest, "APIG.2012", apigInvalid("oas_version"))
		return
	}
	call.serve(func() startAnswer { return s.apigCreate(call, "export_api") },
		apigStartFault([2]string{"APIG.2001", apigMissing("env_id")}), apigNoID)
}

// apigCreate creates an import or export task and answers its ID.
func (s *Simulator) apigCreate(call *startCall, taskType string) startAnswer {
	id := randomHex(16)
	s.createJob(call.rec, id, taskType)
	body, _ := json.Marshal(map[string]string{"task_id": id})
	return jsonAnswer(http.StatusAccepted, body)
}

// readImportForm reads a multipart/form-data body: its plain fields, and the content of its file_name part.
func readImportForm(contentType string, body []byte) (map[string]string, []byte, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		return nil, nil, errors.New("not multipart/form-data")
	}
	reader := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	fields := map[string]string{}
	var file []byte
	for {
		part, err := reader.NextPart()
		if err == io.EOF {
			return fields, file, nil
		}
		if err != nil {
			return nil, nil, err
		}
		content, err := io.ReadAll(part)
		if err != nil {
			return nil, nil, err
		}
		if part.FormName() == "file_name" {
			file = content
			continue
		}
		fields[part.FormName()] = strings.TrimSpace(string(content))
	}
}
