//go:build tools

// Package lint only pins the linter's version for `go build` in the Makefile.
package lint

import _ "github.com/golangci/golangci-lint/v2/cmd/golangci-lint"
