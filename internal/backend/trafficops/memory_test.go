package trafficops

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	bt "github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// Every parser of Traffic Ops answers reads a body right at the limit, of the worst shapes in every field it
// reads, with a bounded amount of memory.
func TestWorstShapedAnswersCostBoundedMemory(t *testing.T) {
	alertFields := map[string]func([]byte) []byte{
		"whole body":    bt.Field("", ""),
		"alerts":        bt.Field(`{"alerts":`, `}`),
		"alerts[0]":     bt.Field(`{"alerts":[`, `]}`),
		"alerts[].text": bt.Field(`{"alerts":[{"level":"error","text":`, `}]}`),
	}
	t.Run("status", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"response":         bt.Field(`{"response":`, `}`),
			"response.message": bt.Field(`{"response":{"status":"PENDING","message":`, `}}`),
			"response.status":  bt.Field(`{"response":{"status":`, `}}`),
			"alerts":           bt.Field(`{"response":{"status":"PENDING"},"alerts":`, `}`),
		})
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_, _ = parseStatusReply(&backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body})
		})
	})
	t.Run("error", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, alertFields)
		bodies["alerts: array of error alerts"] = bt.Fit(backend.MaxBodyBytes, bt.ArrayOf(`{"text":"id must be an integer","level":"error"}`), bt.Field(`{"alerts":`, `}`))
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_, _ = parseStatusReply(&backend.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{}, Body: body})
		})
	})
	t.Run("login", func(t *testing.T) {
		bt.ExpectBoundedCost(t, bt.WorstBodies(backend.MaxBodyBytes, alertFields), nil, func(body []byte) {
			_, _ = parseLoginReply(&backend.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Body: body}, "login")
		})
	})
}
