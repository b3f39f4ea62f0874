package backendtest

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The credentials the simulator accepts in every vendor package's tests. The secret ones are unlike any other
// text of a message, so that ExpectNoSecret can look for them.
const (
	SimUser      = "sim-user"
	SimPassword  = "sim-password-Secret!"
	SimToken     = "sim-token-Secret!" // a fixed token, and ZStack's sessionID
	SimAccessKey = "AKSIM"
	SimSecretKey = "sim-secret-key-Secret!"
)

// SimCredentials are the simulator's credentials, for every vendor alike.
var SimCredentials = vendorsim.Credentials{
	Token: SimToken, Username: SimUser, Password: SimPassword, AccessKey: SimAccessKey, SecretKey: SimSecretKey,
}

// StartSim serves the simulated vendors, accepting SimCredentials, until the test ends; it returns the
// simulator and its base URL.
func StartSim(t testing.TB) (*vendorsim.Simulator, string) {
	t.Helper()
	return vendorsim.Serve(t, SimCredentials)
}

// simSession is the shape of a session the simulator issues ("<vendor>-session-<n>-<random>").
var simSession = regexp.MustCompile(`[a-z]+-session-[0-9]+-`)

// ExpectNoSecret asserts that msg holds none of the secret SimCredentials, no session the simulator issued,
// and none of the other secrets given.
func ExpectNoSecret(g gomega.Gomega, msg string, more ...string) {
	for _, secret := range append([]string{SimPassword, SimToken, SimSecretKey}, more...) {
		if secret != "" {
			g.Expect(msg).NotTo(gomega.ContainSubstring(secret))
		}
	}
	g.Expect(msg).NotTo(gomega.MatchRegexp(simSession.String()))
}

// NewBackend builds a backend of spec and creds through factory, with a client that stays out of a test's
// way (5s timeout, 1000 requests a second) and is closed when the test ends. A refused spec fails the test.
func NewBackend(t testing.TB, factory backend.Factory, spec v1alpha1.TaskBackendSpec, creds backend.Credentials) backend.Backend {
	t.Helper()
	client := backend.NewClient(backend.ClientOptions{Timeout: 5 * time.Second, QPS: 1000, Burst: 1000})
	t.Cleanup(client.Close)
	b, err := factory(backend.Config{Spec: spec, Credentials: creds, Client: client})
	if err != nil {
		t.Fatalf("building the %s backend: %v", spec.Type, err)
	}
	return b
}

// Reply is an answer as a documented example gives it: the HTTP status and the body.
type Reply struct {
	Status int
	Body   string
}

// Response is the reply as backend.Client returns it, for a parser.
func (r Reply) Response() *backend.Response {
	return &backend.Response{StatusCode: r.Status, Header: http.Header{}, Body: []byte(r.Body)}
}

// BenchmarkParse measures a parser on the hot path of every poll: each reply, parsed in a loop as a
// sub-benchmark, with its allocations and bytes per second.
func BenchmarkParse(b *testing.B, replies map[string]Reply, parse func(*backend.Response)) {
	for name, reply := range replies {
		b.Run(name, func(b *testing.B) {
			resp := reply.Response()
			b.ReportAllocs()
			b.SetBytes(int64(len(reply.Body)))
			for b.Loop() {
				parse(resp)
			}
		})
	}
}

// Example returns the documented example reply kept in the calling package's testdata/<name>, named after
// the example it is, without the file's final newline. A missing file panics: examples are read into package
// variables.
func Example(name string) string {
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		panic(err)
	}
	return strings.TrimSuffix(string(body), "\n")
}
