package httpcel

import (
	"context"
	"net/http"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	bt "github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
)

// The answer path of the HTTP backend (the body decoded for the expressions, then every expression) reads a
// body right at the limit, of the worst shapes, with a bounded amount of memory: bodies over the shape limits
// are refused before they are decoded, and the rest cost at most a few MiB beyond the result.
func TestWorstShapedAnswersCostBoundedMemory(t *testing.T) {
	b, err := New(backend.Config{Client: newClient(), Spec: simpleSpec("http://vendor.example", v1alpha1.HTTPExpressions{
		Phase:   "has(response.body.state) ? response.body.state : 'Running'",
		Message: "string(response.text.size())",
		Result:  "response.body",
	})})
	if err != nil {
		t.Fatal(err)
	}
	h := b.(*httpBackend)
	bodies := bt.WorstBodies(backend.MaxBodyBytes, map[string]func([]byte) []byte{
		"whole body": bt.Field("", ""),
		"state":      bt.Field(`{"state":`, `}`),
		"result":     bt.Field(`{"state":"Running","result":`, `}`),
	})
	// Bodies right under the shape limits cost the most to decode; each element is counted as one value per
	// value and key in it.
	for item, valuesPerItem := range map[string]int{`{}`: 1, `[]`: 1, `{"a":0}`: 3, `{"a":{}}`: 3, `"x"`: 1, `1.5`: 1, `[[[[[[[[1]]]]]]]]`: 9} {
		count := maxBodyValues/valuesPerItem - 1
		bodies["at the shape limit: ["+item+",…]"] = bt.ArrayOf(item)(2 + count*(len(item)+1) - 1)
	}
	// A result is written out as JSON, by protojson for a map or list: it costs its own size (at most the
	// body's) once, and in some builds twice (protojson spaces its output at random per binary, and then
	// grows its buffer differently).
	resultSize := func(body []byte) uint64 { return 2 * uint64(len(body)) }
	bt.ExpectBoundedCost(t, bodies, resultSize, func(body []byte) {
		resp := &backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body}
		if checkBodyShape(resp) != nil {
			return
		}
		_, _ = h.observe(context.Background(), answerVars(resp, nil, "id", nil))
	})
}
