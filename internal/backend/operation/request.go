package operation

import (
	"context"
	"fmt"
	"sort"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/httpcel"
)

// Task is what the body expression sees of the task.
type Task struct {
	// Body is the task's spec.submit.body or bodyFrom, decoded: map[string]any (with the values
	// encoding/json decodes into an any: float64 numbers), string, or nil.
	Body any
	// Parameters are the task's spec.submit.parameters.
	Parameters           map[string]string
	Namespace, Name, UID string
}

// Request builds the start request of task: the path with its placeholders filled, the encoded body, and the
// headers (the static ones, Content-Type with any multipart boundary, and the idempotency key header set to
// key when the operation has one; ZStack: X-Job-UUID: key). Its errors are *backend.Error values of
// KindTerminal that name the field (the task fails, and nothing is sent): a task parameter naming one the
// backend sets, a placeholder with no value, a value a server may read as a dot segment, a body expression
// that fails or yields something that cannot be encoded, an encoded body over MaxEncodedBody. A cancelled
// ctx is KindTransient, and a key that cannot be sent a plain error: neither is the task's fault.
func (o *Operation) Request(ctx context.Context, task Task, key string) (backend.StartRequest, error) {
	path, err := o.expandPath(task.Parameters)
	if err != nil {
		return backend.StartRequest{}, err
	}
	body, contentType, err := o.encodeBody(ctx, task)
	if err != nil {
		return backend.StartRequest{}, err
	}
	header := o.headers.Clone()
	if contentType != "" {
		header.Set("Content-Type", contentType)
	}
	if o.IdempotencyKeyHeader != "" {
		if key == "" || !validHeaderValue(key) {
			return backend.StartRequest{}, fmt.Errorf("operation %s: the idempotency key %q cannot be sent in the header %s", o.Name, key, o.IdempotencyKeyHeader)
		}
		header.Set(o.IdempotencyKeyHeader, key)
	}
	return backend.StartRequest{Method: o.Method, Path: path, Header: header, Body: body}, nil
}

// expandPath fills the path's placeholders with the backend's values, then the task's for those the backend
// leaves unset. A task parameter that names one the backend sets fails the task whatever its value (a task
// may not probe the backend's values either), as in the HTTP backend's polls.
func (o *Operation) expandPath(taskParams map[string]string) (string, error) {
	names := make([]string, 0, len(taskParams))
	for name := range taskParams {
		names = append(names, name)
	}
	sort.Strings(names)
	params := make(map[string]string, len(o.parameters)+len(taskParams))
	for _, name := range names {
		if _, set := o.parameters[name]; set {
			return "", backend.Errorf(backend.KindTerminal, "spec.submit.parameters.%s is set by the backend (%s); a task may only fill parameters the backend leaves unset",
				name, o.setBy[name])
		}
		params[name] = taskParams[name]
	}
	for name, value := range o.parameters {
		params[name] = value
	}
	for _, name := range httpcel.Placeholders(o.path) {
		if _, ok := params[name]; !ok {
			return "", backend.Errorf(backend.KindTerminal, "%s.path: placeholder {%s} has no value: set it in %s", o.field, name, o.taskFills)
		}
	}
	path, err := httpcel.ExpandPath(o.path, params)
	if err != nil {
		if e, ok := backend.AsError(err); ok {
			return "", &backend.Error{Kind: backend.KindTerminal, Message: o.field + ".path: " + e.Message}
		}
		return "", backend.Errorf(backend.KindTerminal, "%s.path: %v", o.field, err)
	}
	return path, nil
}

// encodeBody evaluates the body expression over the task and encodes what it yields per contentType. No body
// (null) has no Content-Type either.
func (o *Operation) encodeBody(ctx context.Context, task Task) (body []byte, contentType string, err error) {
	taskParams := task.Parameters
	if taskParams == nil {
		taskParams = map[string]string{}
	}
	vars := map[string]any{
		varTask: map[string]any{
			"body":       task.Body,
			"parameters": taskParams,
			"namespace":  task.Namespace,
			"name":       task.Name,
			"uid":        task.UID,
		},
		varParameters: o.parameters,
	}
	v, err := o.body.EvalOn(ctx, vars, "the task", backend.KindTerminal)
	if err != nil {
		return nil, "", err
	}
	body, contentType, err = encode(v, o.contentType)
	if err != nil {
		return nil, "", backend.Errorf(backend.KindTerminal, "CEL expression %s yielded a body that cannot be sent as %s: %v", o.body.Field(), o.contentType, err)
	}
	return body, contentType, nil
}
