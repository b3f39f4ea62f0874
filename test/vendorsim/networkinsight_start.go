package vendorsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Network Insight start: POST /api/ni/groups/discovered-applications/save ("Save Discovered Applications",
// vRealize Network Insight API reference, developer.broadcom.com/xapis/vrealize-network-insight-api/, body
// DiscoveredAppsBulkSaveRequest {discovered_apps: [{source_entity_id}], discovery_type,
// enable_threshold_analytics}) answers 200 SaveBulkDiscoveredAppResponse
// {"request_id": "TASK_PROGRESS_application.APP_BULK_SAVE.<epoch ms>.<random fraction>", "callback_API":
// "api/ni/groups/task/progress/<request_id>/"}, the task then polled at task/progress/{requestId}
// (niProgress). Errors are the documented {code, message, details}. There is no idempotency key.
//
// Assumed where the documentation is silent: a body that is not JSON or lists no discovered_apps answers 400
// with the error body (target "body"); discovery_type is not checked; the request ID's last part is a
// random fraction as Java's Math.random() prints it, as in the documented example. A Fault's Status answers
// niError's body for it; NoID answers 200 {}.

func (s *Simulator) niSave(w http.ResponseWriter, r *http.Request) {
	call, ok := s.beginStart(w, r, NetworkInsightSave)
	if !ok {
		return
	}
	w = call.w
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "NetworkInsight ")
	if !ok || !s.validSession(niVendor, token) {
		niError(w, http.StatusUnauthorized, "")
		return
	}
	var req struct {
		DiscoveredApps []struct {
			SourceEntityID string `json:"source_entity_id"`
		} `json:"discovered_apps"`
		DiscoveryType            string `json:"discovery_type"`
		EnableThresholdAnalytics bool   `json:"enable_threshold_analytics"`
	}
	if err := json.Unmarshal(call.rec.Body, &req); err != nil || len(req.DiscoveredApps) == 0 {
		niError(w, http.StatusBadRequest, "discovered_apps must list at least one application to save")
		return
	}
	call.serve(func() startAnswer {
		id := fmt.Sprintf("TASK_PROGRESS_application.APP_BULK_SAVE.%d.%s", time.Now().UnixMilli(),
			strconv.FormatFloat(rand.Float64(), 'f', -1, 64))
		s.createJob(call.rec, id, "")
		body, _ := json.Marshal(map[string]string{"request_id": id, "callback_API": "api/ni/groups/task/progress/" + id + "/"})
		return jsonAnswer(http.StatusOK, body)
	}, func(w http.ResponseWriter, status int) { niError(w, status, "") },
		func(startAnswer) startAnswer { return jsonAnswer(http.StatusOK, []byte("{}")) })
}
