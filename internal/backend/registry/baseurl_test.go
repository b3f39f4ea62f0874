package registry

import (
	"strings"
	"testing"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// usableSpecs are, per backend type, a spec and Secret the vendor package accepts, but for the URL.
var usableSpecs = map[v1alpha1.BackendType]struct {
	spec  v1alpha1.TaskBackendSpec
	creds backend.Credentials
}{
	v1alpha1.BackendTypeNetworkInsight: {creds: backend.Credentials{"token": []byte("t")}},
	v1alpha1.BackendTypeTrafficOps:     {creds: backend.Credentials{"token": []byte("t")}},
	v1alpha1.BackendTypeZStack:         {creds: backend.Credentials{"sessionID": []byte("s")}},
	v1alpha1.BackendTypeAPIGateway: {
		spec:  v1alpha1.TaskBackendSpec{APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"}},
		creds: backend.Credentials{"token": []byte("t")},
	},
	v1alpha1.BackendTypeHTTP: {spec: v1alpha1.TaskBackendSpec{HTTP: &v1alpha1.HTTPSettings{
		Path: "/tasks/{taskID}", Expressions: v1alpha1.HTTPExpressions{Phase: "'Running'"}}}},
}

func TestEveryVendorChecksItsBaseURLTheSameWay(t *testing.T) {
	urls := map[string]string{
		"not http":         "ftp://vendor.example.com",
		"no host":          "https://",
		"user information": "https://admin:hunter2@vendor.example.com",
		"query":            "https://vendor.example.com/?region=eu",
		"fragment":         "https://vendor.example.com/#top",
	}
	for typ, factory := range factories {
		usable, ok := usableSpecs[typ]
		if !ok {
			t.Fatalf("no usable spec for backend type %s: add one", typ)
		}
		client := backend.NewClient(backend.ClientOptions{QPS: 1, Burst: 1})
		build := func(url string) error {
			spec := usable.spec
			spec.Type, spec.URL = typ, url
			_, err := factory(backend.Config{Spec: spec, Credentials: usable.creds, Client: client})
			return err
		}
		if err := build("https://vendor.example.com/"); err != nil {
			t.Fatalf("%s: a usable spec is refused: %v", typ, err)
		}
		for name, url := range urls {
			_, want := backend.BaseURL("spec.url", url)
			err := build(url)
			if backend.KindOf(err) != backend.KindInvalidConfig || err.Error() != want.Error() {
				t.Errorf("%s, %s: error %v, want %v", typ, name, err, want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s, %s: the error quotes the password: %v", typ, name, err)
			}
		}
	}
}
