package httpcel

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// placeholder is {taskID} or {name}: a brace, an identifier, a brace. Anything else in braces, such as the
// braces of a JSON body, is literal text.
var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_.-]*)\}`)

// taskIDPlaceholder names the task's ID; every other placeholder names a parameter.
const taskIDPlaceholder = "taskID"

// missingParameterError names a placeholder that has no value.
type missingParameterError struct{ name string }

func (e missingParameterError) Error() string {
	return fmt.Sprintf("placeholder {%s} has no value: set it in spec.http.parameters of the backend or spec.parameters of the task", e.name)
}

// expand fills the placeholders of tmpl, each value passed through escape, which is told what the value is
// ("taskID", "parameter region") for its message when it refuses one.
func expand(tmpl, taskID string, parameters map[string]string, escape func(what, value string) (string, error)) (string, error) {
	var failure error
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		if failure != nil {
			return m
		}
		name := m[1 : len(m)-1]
		what, value, ok := "taskID", taskID, true
		if name != taskIDPlaceholder {
			what = "parameter " + name
			value, ok = parameters[name]
		}
		if !ok {
			failure = missingParameterError{name}
			return m
		}
		escaped, err := escape(what, value)
		if err != nil {
			failure = err
			return m
		}
		return escaped
	})
	return out, failure
}

// expandURL fills a path template: each value is one path segment before the "?" (backend.PathSegment, which
// refuses values a server may read as a dot segment), and a query value after it.
func expandURL(tmpl, taskID string, parameters map[string]string) (path, query string, err error) {
	path, query, _ = strings.Cut(tmpl, "?")
	if path, err = expand(path, taskID, parameters, backend.PathSegment); err != nil {
		return "", "", err
	}
	if query, err = expand(query, taskID, parameters, escapeQueryValue); err != nil {
		return "", "", err
	}
	return path, query, nil
}

// escapeQueryValue escapes a value for a query string or a form body (application/x-www-form-urlencoded).
func escapeQueryValue(_, v string) (string, error) { return url.QueryEscape(v), nil }

// escapeJSONString escapes a value for the inside of a JSON string literal.
func escapeJSONString(_, v string) (string, error) {
	b, _ := json.Marshal(v)
	return string(b[1 : len(b)-1]), nil
}

// taskParameters returns the backend's parameters with those the task fills. A task may only fill
// parameters the backend leaves unset: one that overrides the backend's (whatever its value, so that a task
// cannot probe the backend's values either) is a Terminal error, and nothing is sent.
func taskParameters(backendParams, taskParams map[string]string) (map[string]string, error) {
	var overrides []string
	for k := range taskParams {
		if _, set := backendParams[k]; set {
			overrides = append(overrides, k)
		}
	}
	if len(overrides) > 0 {
		sort.Strings(overrides)
		return nil, backend.Errorf(backend.KindTerminal,
			"spec.parameters.%s is set by the backend (spec.http.parameters); a task may only fill parameters the backend leaves unset",
			overrides[0])
	}
	out := make(map[string]string, len(backendParams)+len(taskParams))
	for k, v := range backendParams {
		out[k] = v
	}
	for k, v := range taskParams {
		out[k] = v
	}
	return out, nil
}
