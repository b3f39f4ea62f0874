//go:build tools

// Package tools records the kubeconform command this module pins.
package tools

import (
	_ "github.com/yannh/kubeconform/cmd/kubeconform"
)
