//go:build tools

// Package lint only pins the linter's version for `go build` in the Makefile.
package lint

import _ "sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter"
