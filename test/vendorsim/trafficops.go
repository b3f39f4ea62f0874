package vendorsim

import "net/http"

// registerTrafficOps is filled in by the TrafficOps simulator.
func (s *Simulator) registerTrafficOps(*http.ServeMux) {}
