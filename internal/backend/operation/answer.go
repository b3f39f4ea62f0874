package operation

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/httpcel"
)

// MaxTaskIDLength is the longest task ID, in characters (status.taskID, as spec.taskID).
const MaxTaskIDLength = 256

// maxExactInteger is the largest integer every JSON number up to it is read exactly as (a float64).
const maxExactInteger = 1 << 53

// Answer is what the vendor's answer to a start request says.
type Answer struct {
	// Accepted is true when the accepted condition held: the vendor took the job.
	Accepted bool
	// TaskID is the job's ID; "" when the answer was accepted but no readable ID came of it (the outcome is
	// then unknown).
	TaskID string
	// Problem says why TaskID could not be read, for the task's message; "" otherwise.
	Problem string
}

// Answer evaluates accepted over the vendor's answer and, when it holds, taskID. key is the key that was
// sent: taskID's variable key, and the ID itself on ZStack (unless the operation says otherwise). An ID that is
// empty, longer than MaxTaskIDLength characters, not UTF-8, holds a control character or is "." or ".." is
// not readable; a number is read as an integer. An error (KindTransient, naming the field) means accepted
// itself could not be evaluated on this answer.
func (o *Operation) Answer(ctx context.Context, resp *backend.Response, key string) (Answer, error) {
	if resp == nil {
		return Answer{}, errors.New("operation: there is no answer to read")
	}
	vars := map[string]any{varResponse: httpcel.ResponseValue(resp), varKey: key}
	accepted, err := o.accepted.EvalBool(ctx, vars, false)
	if err != nil {
		if problem := httpcel.BodyShapeProblem(resp.Body); problem != "" {
			if e, ok := backend.AsError(err); ok {
				return Answer{}, &backend.Error{Kind: e.Kind, Message: e.Message + bodyNote(problem)}
			}
		}
		return Answer{}, err
	}
	if !accepted {
		return Answer{}, nil
	}
	if o.keyIsTaskID {
		if problem := unreadable(key); problem != "" {
			return Answer{Accepted: true, Problem: "the job UUID the operator sent is " + problem}, nil
		}
		return Answer{Accepted: true, TaskID: key}, nil
	}
	id, problem := o.readTaskID(ctx, vars)
	if problem != "" {
		if shape := httpcel.BodyShapeProblem(resp.Body); shape != "" {
			problem += bodyNote(shape)
		}
		return Answer{Accepted: true, Problem: problem}, nil
	}
	return Answer{Accepted: true, TaskID: strings.Clone(id)}, nil // a copy: the ID may be the body's own bytes
}

func bodyNote(shapeProblem string) string {
	return fmt.Sprintf(" (the answer's body is %s, so the expressions see it as null)", shapeProblem)
}

// readTaskID evaluates taskID; problem says why no readable ID came of it.
func (o *Operation) readTaskID(ctx context.Context, vars map[string]any) (id, problem string) {
	field := o.taskID.Field()
	v, err := o.taskID.Eval(ctx, vars)
	if err != nil {
		return "", err.Error()
	}
	switch t := v.(type) {
	case types.String:
		id = string(t)
	case types.Int:
		id = strconv.FormatInt(int64(t), 10)
	case types.Uint:
		id = strconv.FormatUint(uint64(t), 10)
	case types.Double:
		f := float64(t)
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f):
			return "", fmt.Sprintf("CEL expression %s yielded %s, which is not a whole number", field, httpcel.Describe(v))
		case math.Abs(f) > maxExactInteger:
			return "", fmt.Sprintf("CEL expression %s yielded the number %v, too large to be read exactly from JSON: read it from response.text, e.g. with regex.extract", field, f)
		}
		id = strconv.FormatInt(int64(f), 10)
	default:
		if v.Type() == types.NullType {
			return "", fmt.Sprintf("CEL expression %s yielded null", field)
		}
		return "", fmt.Sprintf("CEL expression %s must yield a string or a number, but yielded %s", field, httpcel.Describe(v))
	}
	if problem := unreadable(id); problem != "" {
		return "", fmt.Sprintf("CEL expression %s yielded %s", field, problem)
	}
	return id, ""
}

// unreadable says why id cannot be a task's ID, or "" when it can.
func unreadable(id string) string {
	switch {
	case id == "":
		return "an empty ID"
	case !utf8.ValidString(id):
		return "an ID that is not valid UTF-8"
	case utf8.RuneCountInString(id) > MaxTaskIDLength:
		return fmt.Sprintf("an ID longer than %d characters", MaxTaskIDLength)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return fmt.Sprintf("the ID %q, which holds a control character", backend.Truncate(id, 64))
	case id == "." || id == "..":
		return fmt.Sprintf("the ID %q, which no path can carry", id)
	}
	return ""
}
