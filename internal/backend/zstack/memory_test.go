package zstack

import (
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	bt "github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// Every parser of ZStack answers reads a body right at the limit, of the worst shapes in every field it reads,
// with a bounded amount of memory.
func TestWorstShapedAnswersCostBoundedMemory(t *testing.T) {
	errorFields := map[string]func([]byte) []byte{
		"whole body":    bt.Field("", ""),
		"error":         bt.Field(`{"error":`, `}`),
		"error.details": bt.Field(`{"error":{"code":"SYS.1000","details":`, `}}`),
		"error.cause":   bt.Field(`{"error":{"code":"SYS.1000","cause":`, `}}`),
	}
	t.Run("progress", func(t *testing.T) {
		fields := map[string]func([]byte) []byte{
			"inventories":            bt.Field(`{"inventories":`, `}`),
			"inventories[0]":         bt.Field(`{"inventories":[`, `]}`),
			"subTasks":               bt.Field(`{"inventories":[{"taskName":"root","time":1,"subTasks":`, `}]}`),
			"inventories[0].content": bt.Field(`{"inventories":[{"type":"Task","time":1,"content":`, `}]}`),
		}
		bodies := bt.WorstBodies(backend.MaxBodyBytes, fields)
		for k, v := range bt.WorstBodies(backend.MaxBodyBytes, errorFields) {
			bodies[k] = v
		}
		bodies["inventories: array of full records"] = bt.Fit(backend.MaxBodyBytes,
			bt.ArrayOf(`{"taskUuid":"931102503f64436ea649939ff3957406","taskName":"org.zstack.header.vm.APICreateVmInstanceMsg","type":"Progress","content":"45","time":1.510669257141E12,"totalSteps":4,"currentStep":2,"subTasks":[{"type":"Task","content":"x","time":"1510669257142"}]}`),
			bt.Field(`{"inventories":`, `}`))
		bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
			_, _ = parseProgressReply(&backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body})
		})
	})
	for _, status := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		t.Run("job "+http.StatusText(status), func(t *testing.T) {
			fields := map[string]func([]byte) []byte{"inventory": bt.Field(`{"inventory":`, `}`)}
			bodies := bt.WorstBodies(backend.MaxBodyBytes, fields)
			for k, v := range bt.WorstBodies(backend.MaxBodyBytes, errorFields) {
				bodies[k] = v
			}
			bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
				_, _ = parseJobReply(&backend.Response{StatusCode: status, Header: http.Header{}, Body: body})
			})
		})
	}
	for _, status := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		t.Run("login "+http.StatusText(status), func(t *testing.T) {
			fields := map[string]func([]byte) []byte{"inventory.uuid": bt.Field(`{"inventory":{"uuid":`, `}}`)}
			bodies := bt.WorstBodies(backend.MaxBodyBytes, fields)
			for k, v := range bt.WorstBodies(backend.MaxBodyBytes, errorFields) {
				bodies[k] = v
			}
			bt.ExpectBoundedCost(t, bodies, nil, func(body []byte) {
				_, _ = parseLoginReply(&backend.Response{StatusCode: status, Header: http.Header{}, Body: body}, "admin")
			})
		})
	}
}
