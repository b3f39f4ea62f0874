package apigateway

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// newBackendWith returns a backend with the given Secret keys, talking to a simulator that serves both the
// gateway and IAM.
func newBackendWith(t *testing.T, creds map[string]string, method v1alpha1.APIGatewayAuthMethod) (backend.Backend, *vendorsim.Simulator) {
	t.Helper()
	sim, url := backendtest.StartSim(t)
	secret := backend.Credentials{}
	for k, v := range creds {
		secret[k] = []byte(v)
	}
	return backendtest.NewBackend(t, New, v1alpha1.TaskBackendSpec{
		Type: v1alpha1.BackendTypeAPIGateway, URL: url,
		APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1", IAMURL: url, DomainName: "acme", AuthMethod: method},
	}, secret), sim
}

func TestPasswordLoginIsSharedAndRenewedOnceAfterExpiry(t *testing.T) {
	b, sim := newBackendWith(t, map[string]string{"username": backendtest.SimUser, "password": backendtest.SimPassword}, "")
	sim.AddTask("t1", vendorsim.Step{Phase: vendorsim.Running})
	pollConcurrently := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := b.Poll(context.Background(), "t1"); err != nil {
					t.Errorf("Poll: %v", err)
				}
			})
		}
		wg.Wait()
	}
	pollConcurrently()
	if got := sim.Logins("APIGateway"); got != 1 {
		t.Fatalf("logins after 8 polls = %d, want 1", got)
	}
	sim.ExpireSessions()
	pollConcurrently()
	if got := sim.Logins("APIGateway"); got != 2 {
		t.Errorf("logins after expiry = %d, want exactly one more (2)", got)
	}
}

func TestWrongPasswordIsAnAuthenticationError(t *testing.T) {
	b, sim := newBackendWith(t, map[string]string{"username": backendtest.SimUser, "password": "wrong-password"}, "")
	sim.AddTask("t1", vendorsim.Step{Phase: vendorsim.Running})
	_, err := b.Poll(context.Background(), "t1")
	if backend.KindOf(err) != backend.KindAuthentication {
		t.Fatalf("got %v, want an authentication error", err)
	}
	if !strings.Contains(err.Error(), "IAM login failed") || !strings.Contains(err.Error(), "The username or password is wrong.") {
		t.Errorf("message %q does not say the IAM login failed and why", err.Error())
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("message %q contains the password", err.Error())
	}
}

func TestAKSKSignedRequestsAreAccepted(t *testing.T) {
	b, sim := newBackendWith(t, map[string]string{"accessKey": backendtest.SimAccessKey, "secretKey": backendtest.SimSecretKey}, "")
	sim.AddTask("t1", vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{}`})
	obs, err := b.Poll(context.Background(), "t1")
	if err != nil || obs.Phase != v1alpha1.TaskPhaseSucceeded {
		t.Fatalf("Poll: %v, phase %q", err, obs.Phase)
	}
	bad, _ := newBackendWith(t, map[string]string{"accessKey": backendtest.SimAccessKey, "secretKey": "wrong"}, "")
	if err := bad.Check(context.Background()); backend.KindOf(err) != backend.KindAuthentication {
		t.Errorf("Check with a wrong secret key: %v, want an authentication error", err)
	}
}

func TestAuthMethodChoosesAmongCredentialSets(t *testing.T) {
	all := map[string]string{"token": "wrong", "username": backendtest.SimUser, "password": backendtest.SimPassword, "accessKey": backendtest.SimAccessKey, "secretKey": backendtest.SimSecretKey}
	for _, method := range []v1alpha1.APIGatewayAuthMethod{v1alpha1.APIGatewayAuthPassword, v1alpha1.APIGatewayAuthAKSK} {
		t.Run(string(method), func(t *testing.T) {
			b, _ := newBackendWith(t, all, method)
			if err := b.Check(context.Background()); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
	t.Run("chosen method without its keys", func(t *testing.T) {
		_, err := New(backend.Config{
			Spec: v1alpha1.TaskBackendSpec{URL: "https://apig.eu-de.otc.t-systems.com",
				APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p", InstanceID: "i", AuthMethod: v1alpha1.APIGatewayAuthAKSK}},
			Credentials: backend.Credentials{"token": []byte("t")},
		})
		if backend.KindOf(err) != backend.KindInvalidConfig {
			t.Errorf("New: %v, want InvalidConfig", err)
		}
	})
}

func TestIAMURLIsDerivedFromTheGatewayURL(t *testing.T) {
	_, err := New(backend.Config{
		Spec: v1alpha1.TaskBackendSpec{URL: "https://apig.eu-de.otc.t-systems.com",
			APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p", InstanceID: "i", DomainName: "acme"}},
		Credentials: backend.Credentials{"username": []byte("u"), "password": []byte("p")},
		Client:      backend.NewClient(backend.ClientOptions{Timeout: time.Second, QPS: 1, Burst: 1}),
	})
	if err != nil {
		t.Errorf("New: %v", err)
	}
	_, err = New(backend.Config{
		Spec: v1alpha1.TaskBackendSpec{URL: "https://gateway.internal",
			APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p", InstanceID: "i", DomainName: "acme"}},
		Credentials: backend.Credentials{"username": []byte("u"), "password": []byte("p")},
	})
	if backend.KindOf(err) != backend.KindInvalidConfig || !strings.Contains(err.Error(), "iamURL") {
		t.Errorf("New without a derivable IAM URL: %v, want InvalidConfig naming iamURL", err)
	}
}
