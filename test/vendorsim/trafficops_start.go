package vendorsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Traffic Ops start: POST /api/{version}/deliveryservices/sslkeys/generate/acme
// ("deliveryservices/sslkeys/generate/acme", Traffic Ops API v4 and v5 reference, Apache Traffic Control
// documentation) with {authType, key, deliveryservice, version, hostname, cdn} answers, as
// traffic_ops_golang/deliveryservice/acme.go GenerateAcmeCertificates writes it, 202 Accepted with the header
// Location: /api/<version>/async_status/<id> and
// {"alerts": [{"level": "success", "text": "Beginning async ACME call for <deliveryservice> using <authType>.
// This may take a few minutes. Status updates can be found here: /api/<version>/async_status/<id>"}]}; the
// integer id is then polled at async_status/{id} (toAsyncStatus). A refused body answers 400 with the alert
// "parsing request: missing fields: <field> required; ..." as DeliveryServiceAcmeSSLKeysReq.Validate words it
// (cdn, version, key or deliveryservice, hostname, authType; key and deliveryservice fill each other, and
// must match when both are given). Errors are {"alerts": [{"text", "level": "error"}]}. There is no
// idempotency key.
//
// Assumed or differing: the documentation shows neither the status nor the Location header (the source does);
// the source writes /api/4.0/async_status/ whatever version was asked, the documentation's example the version
// asked, which the simulator follows; a body that is not JSON answers 400 "parsing request: <error>"; delivery
// services and CDNs are not looked up (the real server answers 404 "no DS with name <name>" or "cdn not
// found with name <name>"); async status IDs start at 100000 and skip IDs of scripted tasks. A Fault's
// Status answers an alert of that status (400 a missing field, 403 the endpoint's permissions as its
// documentation lists them, 404 an unknown delivery service, others the HTTP status text); NoID answers 202 with the success alert without
// its status URL and no Location.

func (s *Simulator) toACME(w http.ResponseWriter, r *http.Request) {
	call, ok := s.beginStart(w, r, TrafficOpsACME)
	if !ok {
		return
	}
	w = call.w
	if !toKnownVersion(w, r) {
		return
	}
	session, ok := s.toSession(r)
	if !ok {
		toAlert(w, http.StatusUnauthorized, toErrorTexts[401])
		return
	}
	var req struct {
		AuthType        *string          `json:"authType"`
		Key             *string          `json:"key"`
		DeliveryService *string          `json:"deliveryservice"`
		Version         *json.RawMessage `json:"version"`
		HostName        *string          `json:"hostname"`
		CDN             *string          `json:"cdn"`
	}
	if err := json.Unmarshal(call.rec.Body, &req); err != nil {
		toAlert(w, http.StatusBadRequest, "parsing request: "+err.Error())
		return
	}
	if req.DeliveryService == nil && req.Key != nil {
		req.DeliveryService = req.Key
	} else if req.Key == nil && req.DeliveryService != nil {
		req.Key = req.DeliveryService
	}
	empty := func(p *string) bool { return p == nil || *p == "" }
	var missing []string
	for _, f := range []struct {
		name  string
		empty bool
	}{
		{"cdn", empty(req.CDN)}, {"version", req.Version == nil}, {"key", empty(req.Key)},
		{"deliveryservice", empty(req.DeliveryService)}, {"hostname", empty(req.HostName)},
	} {
		if f.empty {
			missing = append(missing, f.name+" required")
		}
	}
	if req.Key != nil && req.DeliveryService != nil && *req.Key != *req.DeliveryService {
		missing = append(missing, "deliveryservice and key must match")
	}
	if len(missing) == 0 && empty(req.AuthType) {
		missing = append(missing, "authType required")
	}
	if len(missing) > 0 {
		toAlert(w, http.StatusBadRequest, "parsing request: missing fields: "+strings.Join(missing, "; "))
		return
	}
	version := r.PathValue("version")
	started := "Beginning async ACME call for " + *req.DeliveryService + " using " + *req.AuthType + ". This may take a few minutes."
	call.serve(func() startAnswer {
		id := s.nextTrafficOpsJobID()
		s.createJob(call.rec, id, "")
		location := "/api/" + version + "/async_status/" + id
		body, _ := json.Marshal(map[string]any{"alerts": []map[string]string{{"level": "success",
			"text": started + " Status updates can be found here: " + location}}})
		a := jsonAnswer(http.StatusAccepted, body)
		a.header.Set("Location", location)
		toSetCookies(w, session)
		return a
	}, func(w http.ResponseWriter, status int) {
		switch status {
		case http.StatusBadRequest:
			toAlert(w, status, "parsing request: missing fields: cdn required")
		case http.StatusForbidden:
			toAlert(w, status, "missing required Permissions: DS-SECURITY-KEY:UPDATE, ACME:READ, DELIVERY-SERVICE:READ, DELIVERY-SERVICE:UPDATE")
		case http.StatusNotFound:
			toAlert(w, status, "no DS with name "+*req.DeliveryService)
		default:
			toAlert(w, status, toErrorText(status))
		}
	},
		func(startAnswer) startAnswer {
			body, _ := json.Marshal(map[string]any{"alerts": []map[string]string{{"level": "success", "text": started}}})
			return jsonAnswer(http.StatusAccepted, body)
		})
}

// nextTrafficOpsJobID allocates an async status ID no task has.
func (s *Simulator) nextTrafficOpsJobID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		id := strconv.Itoa(s.starts.nextTrafficOpsID)
		s.starts.nextTrafficOpsID++
		if _, taken := s.tasks[id]; !taken {
			return id
		}
	}
}
