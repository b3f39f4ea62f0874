package networkinsight

import (
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	bt "github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// Every parser of Network Insight answers reads a body right at the limit, of the worst shapes in every field
// it reads, with a bounded amount of memory. app_save_response is the task's result: it is referenced in the
// body, not copied, so it needs no allowance either.
func TestWorstShapedAnswersCostBoundedMemory(t *testing.T) {
	errorFields := map[string]func([]byte) []byte{
		"whole body":        bt.Field("", ""),
		"message":           bt.Field(`{"code":500,"message":`, `}`),
		"code":              bt.Field(`{"message":"m","code":`, `}`),
		"details":           bt.Field(`{"code":500,"message":"m","details":`, `}`),
		"details[0].target": bt.Field(`{"code":500,"message":"m","details":[{"message":"d","target":`, `}]}`),
	}
	t.Run("progress", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"whole body":           bt.Field("", ""),
			"app_save_response":    bt.Field(`{"status":"FINISHED","progress":100,"app_save_response":`, `}`),
			"app_save_response[0]": bt.Field(`{"status":"FINISHED","progress":100,"app_save_response":[`, `]}`),
			"errorMessage":         bt.Field(`{"status":"FINISHED","app_save_response":[{"responseCode":"ERROR","errorMessage":`, `}]}`),
			"task_name":            bt.Field(`{"status":"RUNNING","task_name":`, `}`),
			"status":               bt.Field(`{"progress":1,"status":`, `}`),
		})
		bodies["app_save_response: array of failed items"] = bt.Fit(backend.MaxBodyBytes,
			bt.ArrayOf(`{"entityId":"18203:565:2854896465419091802","name":"web","responseCode":"INVALID_MEMBERS","errorMessage":"No members"}`),
			bt.Field(`{"status":"FINISHED","progress":100,"app_save_response":`, `}`))
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_, _ = parseProgressReply(&backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body})
		})
	})
	t.Run("error", func(t *testing.T) {
		bt.ExpectBoundedCost(t, bt.WorstBodies(backend.MaxBodyBytes, errorFields), nil, func(body []byte) {
			_, _ = parseProgressReply(&backend.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{}, Body: body})
		})
	})
	t.Run("login", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"token":  bt.Field(`{"expiry":1,"token":`, `}`),
			"expiry": bt.Field(`{"token":"t","expiry":`, `}`),
		})
		maps.Copy(bodies, bt.WorstBodies(backend.MaxBodyBytes, errorFields))
		for _, status := range []int{http.StatusOK, http.StatusUnauthorized} {
			bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
				_, _, _ = parseLoginReply(&backend.Response{StatusCode: status, Header: http.Header{}, Body: body}, time.Now(), time.Minute)
			})
		}
	})
}
