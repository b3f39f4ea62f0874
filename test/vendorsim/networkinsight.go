package vendorsim

import "net/http"

// registerNetworkInsight is filled in by the NetworkInsight simulator.
func (s *Simulator) registerNetworkInsight(*http.ServeMux) {}
