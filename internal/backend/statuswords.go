package backend

import (
	"strings"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// StatusWords maps a vendor's status words to the phases they mean. Words match ignoring case: vendors
// document one spelling and send another.
type StatusWords map[string]v1alpha1.TaskPhase

// Phase returns the phase of a status word, and whether the vendor package knows the word. An unknown word
// is Running, so that the task goes on being polled while the operator logs the word
// (Observation.UnknownStatus).
func (w StatusWords) Phase(word string) (phase v1alpha1.TaskPhase, known bool) {
	if phase, known = w[word]; known {
		return phase, true
	}
	for spelling, phase := range w {
		if strings.EqualFold(spelling, word) {
			return phase, true
		}
	}
	return v1alpha1.TaskPhaseRunning, false
}
