package httpcel

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
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

// expand fills the placeholders of tmpl, each value passed through escape.
func expand(tmpl, taskID string, parameters map[string]string, escape func(string) string) (string, error) {
	var missing error
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		if name == taskIDPlaceholder {
			return escape(taskID)
		}
		v, ok := parameters[name]
		if !ok {
			if missing == nil {
				missing = missingParameterError{name}
			}
			return m
		}
		return escape(v)
	})
	return out, missing
}

// expandURL fills a path template: values are escaped as one path segment before the "?", and as a query
// value after it.
func expandURL(tmpl, taskID string, parameters map[string]string) (path, query string, err error) {
	path, query, _ = strings.Cut(tmpl, "?")
	if path, err = expand(path, taskID, parameters, escapeSegment); err != nil {
		return "", "", err
	}
	if query, err = expand(query, taskID, parameters, url.QueryEscape); err != nil {
		return "", "", err
	}
	return path, query, nil
}

// escapeSegment escapes a value as one path segment; a value of only dots is spelled in %2E, so that no path
// cleaning takes it for "." or "..".
func escapeSegment(v string) string {
	if v != "" && strings.Trim(v, ".") == "" {
		return strings.Repeat("%2E", len(v))
	}
	return url.PathEscape(v)
}

// escapeJSONString escapes a value for the inside of a JSON string literal.
func escapeJSONString(v string) string {
	b, _ := json.Marshal(v)
	return string(b[1 : len(b)-1])
}

func verbatim(v string) string { return v }

// mergeParameters returns the backend's parameters overridden by the task's.
func mergeParameters(backendParams, taskParams map[string]string) map[string]string {
	out := make(map[string]string, len(backendParams)+len(taskParams))
	for k, v := range backendParams {
		out[k] = v
	}
	for k, v := range taskParams {
		out[k] = v
	}
	return out
}
