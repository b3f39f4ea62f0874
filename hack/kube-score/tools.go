//go:build tools

// Package tools records the kube-score command this module pins.
package tools

import (
	_ "github.com/zegl/kube-score/cmd/kube-score"
)
