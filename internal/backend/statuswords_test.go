package backend

import (
	"testing"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

func TestStatusWordsMatchIgnoringCaseAndCallTheRestRunning(t *testing.T) {
	words := StatusWords{"succeed": v1alpha1.TaskPhaseSucceeded, "FAILED": v1alpha1.TaskPhaseFailed, "waiting": v1alpha1.TaskPhasePending}
	tests := map[string]struct {
		word      string
		wantPhase v1alpha1.TaskPhase
		wantKnown bool
	}{
		"as written":        {word: "succeed", wantPhase: v1alpha1.TaskPhaseSucceeded, wantKnown: true},
		"other case":        {word: "Failed", wantPhase: v1alpha1.TaskPhaseFailed, wantKnown: true},
		"pending":           {word: "WAITING", wantPhase: v1alpha1.TaskPhasePending, wantKnown: true},
		"unknown word":      {word: "paused", wantPhase: v1alpha1.TaskPhaseRunning},
		"empty word":        {word: "", wantPhase: v1alpha1.TaskPhaseRunning},
		"padded is unknown": {word: " succeed", wantPhase: v1alpha1.TaskPhaseRunning},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			phase, known := words.Phase(tc.word)
			if phase != tc.wantPhase || known != tc.wantKnown {
				t.Errorf("Phase(%q) = %s, %v; want %s, %v", tc.word, phase, known, tc.wantPhase, tc.wantKnown)
			}
		})
	}
}
