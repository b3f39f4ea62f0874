package vendorsim

import "net/http"

// registerZStack is filled in by the ZStack simulator.
func (s *Simulator) registerZStack(*http.ServeMux) {}
