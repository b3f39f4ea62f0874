package controller

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// cachedTask returns a task as the API server sends it, every string its own copy as a decoder makes them.
func cachedTask(name string, phase v1alpha1.TaskPhase) *v1alpha1.AsyncTask {
	clone := strings.Clone
	now := metav1.NewTime(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	return &v1alpha1.AsyncTask{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: clone("team-a"), Name: name, UID: types.UID("uid-" + name), Generation: 1,
			Labels:          map[string]string{"app.kubernetes.io/name": "x"},
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 2000)},
			OwnerReferences: []metav1.OwnerReference{{Name: "owner"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		},
		Spec: v1alpha1.AsyncTaskSpec{
			BackendRef: v1alpha1.BackendReference{Name: clone("apig")}, TaskID: "id-" + name,
			Parameters: map[string]string{"k": "v"}, TTLSecondsAfterFinished: ptr.To[int32](60),
		},
		Status: v1alpha1.AsyncTaskStatus{
			Phase: v1alpha1.TaskPhase(clone(string(phase))), VendorStatus: clone("running"), Message: clone("Importing 3 of 7"),
			Progress: ptr.To[int32](40), StartTime: &now, CompletionTime: &now, LastProgressTime: &now, ObservedGeneration: 1,
			Result: &v1alpha1.JSON{Raw: []byte(`{"id":"x"}`)},
			Conditions: []metav1.Condition{
				{Type: clone("Ready"), Status: metav1.ConditionStatus(clone("False")), Reason: clone("Running"), Message: clone("Importing 3 of 7")},
				{Type: clone("Reconciling"), Status: metav1.ConditionStatus(clone("True")), Reason: clone("Running"), Message: clone("Importing 3 of 7")},
			},
		},
	}
}

func sameMemory(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestCacheKeepsOnlyWhatTheOperatorReads: the AsyncTask cache transform drops metadata the operator never
// reads, keeps a running task's spec and status whole (its next status is computed from them), shares
// repeated strings, and keeps of a finished task only what decides its deletion and what the metrics count.
func TestCacheKeepsOnlyWhatTheOperatorReads(t *testing.T) {
	g := NewWithT(t)
	trim := func(task *v1alpha1.AsyncTask) *v1alpha1.AsyncTask {
		t.Helper()
		out, err := trimTask(task)
		g.Expect(err).NotTo(HaveOccurred())
		return out.(*v1alpha1.AsyncTask)
	}

	want := cachedTask("a", v1alpha1.TaskPhaseRunning)
	a, b := trim(cachedTask("a", v1alpha1.TaskPhaseRunning)), trim(cachedTask("b", v1alpha1.TaskPhaseRunning))
	g.Expect(a.Labels).To(BeNil())
	g.Expect(a.Annotations).To(BeNil())
	g.Expect(a.OwnerReferences).To(BeNil())
	g.Expect(a.ManagedFields).To(BeNil())
	g.Expect(a.Spec).To(Equal(want.Spec), "a running task's spec is kept whole")
	g.Expect(a.Status).To(Equal(want.Status), "and its status")
	g.Expect(sameMemory(a.Status.Conditions[0].Message, a.Status.Message)).To(BeTrue(), "a message equal to status.message is shared")
	g.Expect(sameMemory(a.Status.Conditions[1].Reason, b.Status.Conditions[1].Reason)).To(BeTrue(), "reasons are shared across tasks")
	g.Expect(sameMemory(a.Namespace, b.Namespace)).To(BeTrue(), "namespaces too")
	g.Expect(sameMemory(a.Spec.BackendRef.Name, b.Spec.BackendRef.Name)).To(BeTrue(), "and backend names")

	done := trim(cachedTask("done", v1alpha1.TaskPhaseSucceeded))
	full := cachedTask("done", v1alpha1.TaskPhaseSucceeded)
	g.Expect(done.Spec).To(Equal(v1alpha1.AsyncTaskSpec{BackendRef: full.Spec.BackendRef, TTLSecondsAfterFinished: ptr.To[int32](60)}))
	g.Expect(done.Status).To(Equal(v1alpha1.AsyncTaskStatus{Phase: v1alpha1.TaskPhaseSucceeded, CompletionTime: full.Status.CompletionTime, ObservedGeneration: 1}))
	g.Expect(done.Name).To(Equal("done"))
	g.Expect(done.UID).To(Equal(full.UID))
}

// TestSharedStringsAreBounded: only short strings are shared, and the table stops growing at its bound.
func TestSharedStringsAreBounded(t *testing.T) {
	g := NewWithT(t)
	long := strings.Repeat("m", maxSharedStringLength+1)
	g.Expect(sameMemory(sharedString(long), sharedString(strings.Clone(long)))).To(BeFalse())
	for i := range maxSharedStrings + 10 {
		sharedString("tenant-name-" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + string(rune(i)))
	}
	sharedStrings.Lock()
	defer sharedStrings.Unlock()
	g.Expect(len(sharedStrings.m)).To(BeNumerically("<=", maxSharedStrings))
}
