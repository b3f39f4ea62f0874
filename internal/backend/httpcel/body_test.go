package httpcel

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

func TestBodyOverTheShapeLimitsIsRefusedNamingTheLimit(t *testing.T) {
	for body, want := range map[string]string{
		strings.Repeat("[", maxBodyDepth+1) + strings.Repeat("]", maxBodyDepth+1): "JSON nested deeper than 64 levels",
		"[" + strings.Repeat("0,", maxBodyValues) + "0]":                          "JSON more than 25000 values",
	} {
		err := checkBodyShape(&backend.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: []byte(body)})
		if backend.KindOf(err) != backend.KindTransient || err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("got %v, want a one-line transient error naming %q", err, want)
		}
	}
	for _, body := range []string{`{"state":"Running"}`, "<html>not JSON</html>", ""} {
		if err := checkBodyShape(&backend.Response{StatusCode: http.StatusOK, Body: []byte(body)}); err != nil {
			t.Errorf("%q: %v", body, err)
		}
	}
}

// FuzzDecodeBody checks that the in-place decoder gives what encoding/json gives.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{`{"a":[1,"x",null,true,{"b":{}}],"a":2}`, `[]`, `"\u00e9\ud83d\ude00 \"q\""`, `{"k\u0041":-1.5e3}`, "\"\xff\"", `1e400`, ` [ {} , [ ] ] `} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodeBody(body)
		var want any
		err := json.Unmarshal(body, &want)
		if backend.JSONShapeProblem(body, maxBodyDepth, maxBodyValues) != "" {
			if ok {
				t.Fatalf("%q is over the shape limits, and decoded", body)
			}
			return
		}
		if ok != (err == nil) {
			t.Fatalf("%q: decoded %v, encoding/json: %v", body, ok, err)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %#v, encoding/json %#v", body, got, want)
		}
	})
}
