package apigateway

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	bt "github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// Every parser of API Gateway answers reads a body right at the limit, of the worst shapes in every field it
// reads, with a bounded amount of memory. task_result is a JSON document inside a string, and the task's
// result: unescaping it costs its own size once (it is referenced in the body when it holds no escapes).
func TestWorstShapedAnswersCostBoundedMemory(t *testing.T) {
	resultSize := func(body []byte) uint64 { return uint64(len(body)) }
	t.Run("task", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"whole body":         bt.Field("", ""),
			"task_result":        bt.InString(`{"task_status":"succeeded","task_result":`, `}`),
			"failed task_result": bt.InString(`{"task_status":"failed","task_result":`, `}`),
			"task_type":          bt.Field(`{"task_status":"processing","task_type":`, `}`),
		})
		for name, body := range bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"task_result.success": func(v []byte) []byte {
				return bt.InString(`{"task_status":"succeeded","task_result":`, `}`)(append(append([]byte(`{"success":`), v...), '}'))
			},
			"task_result.failure": func(v []byte) []byte {
				return bt.InString(`{"task_status":"succeeded","task_result":`, `}`)(append(append([]byte(`{"failure":`), v...), '}'))
			},
		}) {
			bodies[name] = body
		}
		bt.ExpectBoundedCost(t, bodies, resultSize, func(body []byte) {
			_, _ = parseTaskReply(&backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body})
		})
	})
	t.Run("error", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"whole body": bt.Field("", ""),
			"error_msg":  bt.Field(`{"error_code":"APIG.3030","error_msg":`, `}`),
		})
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_, _ = parseTaskReply(&backend.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Body: body})
		})
	})
	t.Run("IAM login", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"whole body":       bt.Field("", ""),
			"token":            bt.Field(`{"token":`, `}`),
			"token.expires_at": bt.Field(`{"token":{"expires_at":`, `}}`),
		})
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_ = tokenExpiry(&backend.Response{StatusCode: http.StatusCreated, Header: http.Header{}, Body: body})
		})
	})
	t.Run("IAM login refused", func(t *testing.T) {
		bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
			"whole body":    bt.Field("", ""),
			"error.code":    bt.Field(`{"error":{"message":"m","code":`, `}}`),
			"error.message": bt.Field(`{"error":{"code":401,"message":`, `}}`),
		})
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_ = iamLoginError(&backend.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Body: body})
		})
	})
}
