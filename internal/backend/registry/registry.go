// Package registry maps each backend type to the vendor package that speaks its protocol. Adding a vendor is
// one package under internal/backend/ and one line here.
package registry

import (
	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/apigateway"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/httpcel"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/networkinsight"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/trafficops"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/zstack"
)

// factories is the one list of vendor packages; a duplicated key does not compile.
var factories = map[v1alpha1.BackendType]backend.Factory{
	v1alpha1.BackendTypeNetworkInsight: networkinsight.New,
	v1alpha1.BackendTypeAPIGateway:     apigateway.New,
	v1alpha1.BackendTypeTrafficOps:     trafficops.New,
	v1alpha1.BackendTypeZStack:         zstack.New,
	v1alpha1.BackendTypeHTTP:           httpcel.New,
}

// Lookup returns the factory for a backend type, or a KindInvalidConfig error when this build has none.
func Lookup(t v1alpha1.BackendType) (backend.Factory, error) {
	if f, ok := factories[t]; ok {
		return f, nil
	}
	return nil, backend.Errorf(backend.KindInvalidConfig, "backend type %q is not supported by this version of the operator", t)
}
