package submit

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// FuzzRecords reads any annotation values a person (or kubectl) may leave on a task: never a panic, a
// recorded attempt is at least 1, a job ID read from the records passes the task ID rules when it came from a
// resolution, and Decide answers for every recovery.
func FuzzRecords(f *testing.F) {
	f.Add(`{"attempt":1,"key":"0123456789abcdef0123456789abcdef","time":"2026-12-04T09:00:00Z"}`, "job-1", "adopt:job-1", int32(0))
	f.Add(`{"attempt":-3}`, "", "resubmit", int32(2))
	f.Add(`not json`, "", "abandon", int32(1))
	f.Add(`{"attempt":2147483647,"time":"x"}`, "..", "adopt:..", int32(7))
	f.Add(``, "", "adopt:\x00", int32(0))
	f.Fuzz(func(t *testing.T, attempt, taskID, resolve string, statusAttempt int32) {
		task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{UID: "u", Annotations: map[string]string{
			v1alpha1.AnnotationSubmitAttempt: attempt, v1alpha1.AnnotationTaskID: taskID, v1alpha1.AnnotationResolve: resolve}}}
		task.Spec.Submit = &v1alpha1.SubmitSpec{Operation: "o"}
		if statusAttempt != 0 {
			task.Status.Submission = &v1alpha1.SubmissionStatus{Attempt: statusAttempt}
		}
		r := ReadRecords(task)
		if r.Attempt.Number < 0 {
			t.Fatalf("attempt %d", r.Attempt.Number)
		}
		if a, ok := decodeAttempt(attempt); ok {
			if a.Number < 1 {
				t.Fatalf("decoded attempt %d", a.Number)
			}
			if b, ok := decodeAttempt(encodeAttempt(a)); !ok || b.Number != a.Number || b.Key != a.Key {
				t.Fatalf("round trip %+v -> %+v", a, b)
			}
		}
		if res, err := parseResolve(r.Resolve); err == nil && res.kind == v1alpha1.ResolveAdoptPrefix && taskIDProblem(res.taskID) != "" {
			t.Fatalf("adopted an unusable ID %q", res.taskID)
		}
		for _, rec := range []Recovery{RecoverByPerson, RecoverByKey, RecoverByProbe} {
			if a := Decide(r, rec, time.Unix(1_800_000_000, 0)); a.String() == "" {
				t.Fatalf("no action for %+v", r)
			}
		}
	})
}
