package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackendType names a vendor protocol.
// +kubebuilder:validation:Enum=NetworkInsight;TrafficOps;ZStack;APIGateway;HTTP
type BackendType string

// The vendor protocols the operator speaks.
const (
	BackendTypeNetworkInsight BackendType = "NetworkInsight"
	BackendTypeTrafficOps     BackendType = "TrafficOps"
	BackendTypeZStack         BackendType = "ZStack"
	BackendTypeAPIGateway     BackendType = "APIGateway"
	BackendTypeHTTP           BackendType = "HTTP"
)

// TaskBackendSpec says how to reach one vendor endpoint. TaskBackend and ClusterTaskBackend share it.
// +kubebuilder:validation:XValidation:rule="!has(self.networkInsight) || self.type == 'NetworkInsight'",message="networkInsight is only allowed with type NetworkInsight",fieldPath=".networkInsight"
// +kubebuilder:validation:XValidation:rule="!has(self.trafficOps) || self.type == 'TrafficOps'",message="trafficOps is only allowed with type TrafficOps",fieldPath=".trafficOps"
// +kubebuilder:validation:XValidation:rule="!has(self.apiGateway) || self.type == 'APIGateway'",message="apiGateway is only allowed with type APIGateway",fieldPath=".apiGateway"
// +kubebuilder:validation:XValidation:rule="!has(self.http) || self.type == 'HTTP'",message="http is only allowed with type HTTP",fieldPath=".http"
// +kubebuilder:validation:XValidation:rule="!has(self.operations) || !(self.type in ['HTTP', 'TrafficOps']) || self.operations.all(o, has(o.taskID) && o.taskID.size() > 0)",message="operations[].taskID is required for type HTTP and TrafficOps: a CEL expression that reads the job's ID from the answer",fieldPath=".operations"
// +kubebuilder:validation:XValidation:rule="!has(self.operations) || self.type != 'ZStack' || self.operations.all(o, !has(o.idempotencyKeyHeader) || o.idempotencyKeyHeader == 'X-Job-UUID')",message="a ZStack operation always sends its job UUID in X-Job-UUID: idempotencyKeyHeader may only be X-Job-UUID",fieldPath=".operations"
type TaskBackendSpec struct {
	// Type is the vendor protocol.
	// +required
	Type BackendType `json:"type"`

	// URL is the base URL of the vendor API, e.g. https://vrni.example.com.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https') && url(self).getHostname().size() > 0",message="must be an http or https URL with a host"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]*://[^/?#]*@')",message="must not hold user information (user:password@): put credentials in the credentials Secret"
	URL string `json:"url"`

	// CredentialsSecretRef names the Secret that holds the credentials. The namespace is only allowed, and
	// required, on a ClusterTaskBackend; a TaskBackend reads Secrets in its own namespace.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// TLS sets the trust for https URLs. Without it the system roots verify the server.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// RequestTimeout limits one HTTP request.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="must be between 1s and 5m"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`

	// PollInterval is the default poll interval of the tasks that use this backend.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="must be between 1s and 24h"
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// RateLimit caps the requests the operator sends this backend, all tasks together.
	// +optional
	// +kubebuilder:default={qps: 20, burst: 40}
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// MaxResponseBytes is the most of one vendor answer the operator reads; a longer answer is an error.
	// +optional
	// +kubebuilder:default=8388608
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=8388608
	MaxResponseBytes *int64 `json:"maxResponseBytes,omitempty"`

	// AllowedNamespaces selects, by their labels, the namespaces whose AsyncTasks may use this
	// ClusterTaskBackend (kubernetes.io/metadata.name selects one by name); every namespace when absent. Only
	// on ClusterTaskBackend.
	// +optional
	AllowedNamespaces *metav1.LabelSelector `json:"allowedNamespaces,omitempty"`

	// NetworkInsight holds the login domain for type NetworkInsight.
	// +optional
	NetworkInsight *NetworkInsightSettings `json:"networkInsight,omitempty"`

	// TrafficOps holds the API version for type TrafficOps.
	// +optional
	TrafficOps *TrafficOpsSettings `json:"trafficOps,omitempty"`

	// APIGateway holds the path parameters and IAM settings for type APIGateway.
	// +optional
	APIGateway *APIGatewaySettings `json:"apiGateway,omitempty"`

	// HTTP holds the settings of the generic HTTP backend.
	// +optional
	HTTP *HTTPSettings `json:"http,omitempty"`

	// Operations are the jobs AsyncTasks may start through this backend (spec.submit.operation names one):
	// what may be started is decided here, never by the task.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Operations []Operation `json:"operations,omitempty"`
}

// SubmitContentType is how an operation's body is encoded.
// +kubebuilder:validation:Enum=application/json;application/x-www-form-urlencoded;multipart/form-data
type SubmitContentType string

// Content types of an operation's body.
const (
	ContentTypeJSON      SubmitContentType = "application/json"
	ContentTypeForm      SubmitContentType = "application/x-www-form-urlencoded"
	ContentTypeMultipart SubmitContentType = "multipart/form-data"
)

// Operation is a job that AsyncTasks may start through the backend: the start request, and how to read the
// vendor's answer. Requests go through the backend's own authentication, session, TLS, rate limit and network
// policy.
type Operation struct {
	// Name is what a task names in spec.submit.operation.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Method is POST or PUT.
	// +optional
	// +kubebuilder:default=POST
	// +kubebuilder:validation:Enum=POST;PUT
	Method HTTPMethod `json:"method,omitempty"`

	// Path is appended to spec.url. Its {name} placeholders take the backend's own values (API Gateway
	// {projectID} and {instanceID}; HTTP spec.http.parameters), then the task's spec.submit.parameters for the
	// ones the backend leaves unset; each value is one escaped path segment, under the rules of taskID.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="must start with /"
	Path string `json:"path"`

	// ContentType is how the body is encoded: application/json (default), application/x-www-form-urlencoded,
	// or multipart/form-data, where a field whose value is {filename, content} is a file part.
	// +optional
	// +kubebuilder:default="application/json"
	ContentType SubmitContentType `json:"contentType,omitempty"`

	// Body is a CEL expression over task (body, parameters, namespace, name, uid) and parameters (the
	// backend's) that yields the request body: a map or list is encoded per contentType, a string is sent as it
	// is. Default task.body. It never sees credentials.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Body string `json:"body,omitempty"`

	// Headers are static headers sent with the start request.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 256 && size(self[k]) <= 4096)",message="header names are at most 256 and values at most 4096 characters"
	Headers map[string]string `json:"headers,omitempty"`

	// Accepted is a CEL condition over response (status, headers, body, cookies) that is true when the vendor
	// took the job. Default response.status >= 200 && response.status < 300.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Accepted string `json:"accepted,omitempty"`

	// TaskID is a CEL expression over response yielding the vendor's ID of the started job (a string).
	// Default: APIGateway response.body.task_id, NetworkInsight response.body.request_id, ZStack the job UUID
	// the operator sent; required for HTTP and TrafficOps.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	TaskID string `json:"taskID,omitempty"`

	// IdempotencyKeyHeader names the header that carries a key derived from the task's UID and the attempt.
	// Only a vendor that treats a repeated key as the same request may have one: then a send whose outcome is
	// unknown is repeated automatically with the same key. ZStack always sends X-Job-UUID.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	IdempotencyKeyHeader string `json:"idempotencyKeyHeader,omitempty"`

	// MaxRunning is the most tasks of this operation on this backend started and not finished at once; the
	// rest wait in creation order (Submitted=Unknown, reason Queued). No limit when absent.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRunning *int32 `json:"maxRunning,omitempty"`
}

// SecretReference names a Secret.
type SecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of the Secret; only on ClusterTaskBackend, where it is required.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// SecretKeyReference names one key of a Secret.
type SecretKeyReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of the Secret; only on ClusterTaskBackend, where it is required.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// Key in the Secret that holds the PEM CA bundle.
	// +optional
	// +kubebuilder:default="ca.crt"
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// TLSConfig sets the TLS trust for https URLs.
type TLSConfig struct {
	// CASecretRef names a Secret key holding PEM CA certificates to trust instead of the system roots.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`

	// InsecureSkipVerify turns server certificate verification off. Only for testing.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// ServerName overrides the name the server certificate is verified against.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
}

// RateLimit caps the request rate to one backend.
type RateLimit struct {
	// QPS is the most requests per second on average.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=20
	QPS int32 `json:"qps"`

	// Burst is the most requests sent at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=40
	Burst int32 `json:"burst"`
}

// NetworkInsightDomainType is the login domain kind of Network Insight.
// +kubebuilder:validation:Enum=LOCAL;LDAP
type NetworkInsightDomainType string

// Network Insight login domain kinds.
const (
	NetworkInsightDomainLocal NetworkInsightDomainType = "LOCAL"
	NetworkInsightDomainLDAP  NetworkInsightDomainType = "LDAP"
)

// NetworkInsightSettings holds the login domain for Network Insight.
// +kubebuilder:validation:XValidation:rule="self.domainType != 'LDAP' || (has(self.domain) && self.domain.size() > 0)",message="domain is required when domainType is LDAP",fieldPath=".domain"
type NetworkInsightSettings struct {
	// DomainType is LOCAL or LDAP.
	// +optional
	// +kubebuilder:default=LOCAL
	DomainType NetworkInsightDomainType `json:"domainType,omitempty"`

	// Domain is the LDAP domain name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Domain string `json:"domain,omitempty"`
}

// TrafficOpsSettings holds the Traffic Ops API version.
type TrafficOpsSettings struct {
	// APIVersion is the Traffic Ops API version in the path, e.g. "5.0".
	// +optional
	// +kubebuilder:default="5.0"
	// +kubebuilder:validation:Pattern=`^[0-9]+\.[0-9]+$`
	APIVersion string `json:"apiVersion,omitempty"`
}

// APIGatewayAuthMethod chooses how to authenticate to API Gateway.
// +kubebuilder:validation:Enum=Token;Password;AKSK
type APIGatewayAuthMethod string

// API Gateway authentication methods.
const (
	APIGatewayAuthToken    APIGatewayAuthMethod = "Token"
	APIGatewayAuthPassword APIGatewayAuthMethod = "Password"
	APIGatewayAuthAKSK     APIGatewayAuthMethod = "AKSK"
)

// APIGatewaySettings holds the path parameters and IAM settings for Huawei Cloud / Open Telekom Cloud API
// Gateway.
type APIGatewaySettings struct {
	// ProjectID is the project in the request path.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ProjectID string `json:"projectID"`

	// InstanceID is the gateway instance in the request path.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	InstanceID string `json:"instanceID"`

	// IAMURL is the IAM endpoint for password login, e.g. https://iam.eu-de.otc.t-systems.com.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https')",message="must be an http or https URL"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]*://[^/?#]*@')",message="must not hold user information (user:password@): put credentials in the credentials Secret"
	IAMURL string `json:"iamURL,omitempty"`

	// DomainName is the IAM domain (account) name for password login.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DomainName string `json:"domainName,omitempty"`

	// AuthMethod chooses the credential set when the Secret holds more than one; by default the first
	// complete set of token, username+password, accessKey+secretKey.
	// +optional
	AuthMethod APIGatewayAuthMethod `json:"authMethod,omitempty"`
}

// HTTPMethod is the method of a request the operator sends.
type HTTPMethod string

// Methods of the generic HTTP backend's requests.
const (
	HTTPMethodGet  HTTPMethod = "GET"
	HTTPMethodPost HTTPMethod = "POST"
	HTTPMethodPut  HTTPMethod = "PUT"
)

// HTTPSettings describe a vendor's task-status API to the generic HTTP backend: the request that asks about
// one task, how to authenticate, and Common Expression Language (CEL) expressions that read the answer.
// +kubebuilder:validation:XValidation:rule="!has(self.body) || self.method == 'POST'",message="body is only allowed with method POST",fieldPath=".body"
type HTTPSettings struct {
	// Path is appended to spec.url to ask about one task, e.g. /api/v1/tasks/{taskID}?verbose=true, written
	// percent-encoded as it is sent. {taskID} is the task's ID and {name} the parameter name; before the "?"
	// each value is one escaped path segment (a value a server may read as "." or ".." is refused), after it
	// a query-escaped value.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="must start with /"
	Path string `json:"path"`

	// Method is GET or POST.
	// +optional
	// +kubebuilder:default=GET
	// +kubebuilder:validation:Enum=GET;POST
	Method HTTPMethod `json:"method,omitempty"`

	// Body is the request body of a POST, a template with the {taskID} and {name} placeholders of path. In a
	// JSON body (the default Content-Type) the values are escaped for a JSON string, in an
	// application/x-www-form-urlencoded one as form values; a body of any other Content-Type may not hold
	// placeholders.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Body string `json:"body,omitempty"`

	// Headers are sent with every request to the vendor (not with the login).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 256 && size(self[k]) <= 4096)",message="header names are at most 256 and values at most 4096 characters"
	Headers map[string]string `json:"headers,omitempty"`

	// Parameters fill the {name} placeholders of path, body and followUp. An AsyncTask's spec.parameters may
	// fill the placeholders these leave unset, never override these.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 63 && size(self[k]) <= 1024)",message="parameter names are at most 63 and values at most 1024 characters"
	Parameters map[string]string `json:"parameters,omitempty"`

	// Auth says how requests are authenticated. Without it, by the keys of the credentials Secret: token
	// (Bearer), username + password (Basic), or headerName + headerValue; with no Secret, not at all.
	// +optional
	Auth *HTTPAuth `json:"auth,omitempty"`

	// FollowUp is a second request, sent after the first when its condition holds, for vendors that report
	// a task in two places (ZStack: the job, then its progress). Its answer is followUp in the expressions.
	// +optional
	FollowUp *HTTPFollowUp `json:"followUp,omitempty"`

	// Expressions read the vendor's answer into the task's status.
	// +required
	Expressions HTTPExpressions `json:"expressions"`
}

// HTTPAuthMethod is how the generic HTTP backend authenticates.
// +kubebuilder:validation:Enum=None;Bearer;Basic;Header;Login
type HTTPAuthMethod string

// Authentication methods of the generic HTTP backend.
const (
	// HTTPAuthNone sends no credentials.
	HTTPAuthNone HTTPAuthMethod = "None"
	// HTTPAuthBearer sends the Secret's token in tokenHeader, formatted by tokenFormat.
	HTTPAuthBearer HTTPAuthMethod = "Bearer"
	// HTTPAuthBasic sends the Secret's username and password as HTTP Basic authentication.
	HTTPAuthBasic HTTPAuthMethod = "Basic"
	// HTTPAuthHeader sends the Secret's headerValue in the header the Secret's headerName names.
	HTTPAuthHeader HTTPAuthMethod = "Header"
	// HTTPAuthLogin logs in with the login request and sends the token it yields; it logs in again once
	// when an answer says the session expired.
	HTTPAuthLogin HTTPAuthMethod = "Login"
)

// HTTPAuth says how the generic HTTP backend authenticates.
// +kubebuilder:validation:XValidation:rule="!has(self.login) || !has(self.method) || self.method == 'Login'",message="login is only allowed with method Login",fieldPath=".login"
// +kubebuilder:validation:XValidation:rule="!has(self.method) || self.method != 'Login' || has(self.login)",message="method Login needs login",fieldPath=".login"
// +kubebuilder:validation:XValidation:rule="!has(self.tokenFormat) || self.tokenFormat.contains('{token}')",message="must contain {token}",fieldPath=".tokenFormat"
type HTTPAuth struct {
	// Method is None, Bearer (Secret key token), Basic (username, password), Header (headerName,
	// headerValue) or Login; Login when login is set, else chosen by the Secret's keys.
	// +optional
	Method HTTPAuthMethod `json:"method,omitempty"`

	// TokenHeader is the header that carries the token of Bearer and Login. Default Authorization.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	TokenHeader string `json:"tokenHeader,omitempty"`

	// TokenFormat is the header value, a template with {token}. Default "Bearer {token}".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	TokenFormat string `json:"tokenFormat,omitempty"`

	// TokenCookie, with Login, sends the token as this cookie instead of a header.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	TokenCookie string `json:"tokenCookie,omitempty"`

	// Login is the request that yields a session token.
	// +optional
	Login *HTTPLogin `json:"login,omitempty"`
}

// HTTPLogin is a login request whose answer yields a session token.
type HTTPLogin struct {
	// Path is appended to spec.url; {name} placeholders take the backend's parameters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="must start with /"
	Path string `json:"path"`

	// Method is POST, PUT or GET.
	// +optional
	// +kubebuilder:default=POST
	// +kubebuilder:validation:Enum=GET;POST;PUT
	Method HTTPMethod `json:"method,omitempty"`

	// Headers are sent with the login.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) <= 256 && size(self[k]) <= 4096)",message="header names are at most 256 and values at most 4096 characters"
	Headers map[string]string `json:"headers,omitempty"`

	// Body is a CEL expression over credentials (the Secret's keys) and parameters that yields the login
	// body: a map or list is sent as JSON, a string as it is. For example
	// {"user": credentials.username, "password": credentials.password}.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Body string `json:"body,omitempty"`

	// Token is a CEL expression over the login's response that yields the session token (a string), e.g.
	// response.body.token, response.headers["x-subject-token"] or response.cookies.session.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Token string `json:"token"`

	// Expired is a CEL expression over a poll's response that is true when the session has expired, which
	// logs in again once. Default response.status == 401.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Expired string `json:"expired,omitempty"`
}

// HTTPFollowUp is a second request about the same task.
type HTTPFollowUp struct {
	// When is a CEL expression over response and task: the follow-up is sent only when it is true. Default
	// always.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	When string `json:"when,omitempty"`

	// Path is appended to spec.url, with the placeholders of spec.http.path.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="must start with /"
	Path string `json:"path"`
}

// HTTPExpressions are CEL expressions over response (status int, headers and cookies: maps of string,
// body: the JSON body or null, text: the body as a string), followUp (the same, status 0 when not sent) and
// task (id, parameters). An expression that yields null leaves its field unset.
type HTTPExpressions struct {
	// Accept is true when the answer is about the task; other answers are errors classified by their HTTP
	// status (401/403 authentication, 404 task not found, 429 and 5xx retried, other 4xx failing the task).
	// Default: response.status between 200 and 299.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Accept string `json:"accept,omitempty"`

	// ErrorMessage is the vendor's error text of an answer that accept refused (a string), quoted in the
	// task's message.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	ErrorMessage string `json:"errorMessage,omitempty"`

	// Phase yields Pending, Running, Succeeded or Failed.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Phase string `json:"phase"`

	// Progress yields the percent done, a number (clamped to 0..100, rounded down).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Progress string `json:"progress,omitempty"`

	// Message yields one line for humans (a string).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// VendorStatus yields the vendor's own status word (a string).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	VendorStatus string `json:"vendorStatus,omitempty"`

	// TaskName yields the vendor's task name or type (a string).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	TaskName string `json:"taskName,omitempty"`

	// Result yields the task's result: any value, written as JSON; a string holding JSON is parsed.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Result string `json:"result,omitempty"`

	// StartTime yields when the task started: a timestamp, an RFC 3339 string, or epoch seconds (or
	// milliseconds, above 1e12).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	StartTime string `json:"startTime,omitempty"`

	// CompletionTime yields when the task finished, in the forms of startTime.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	CompletionTime string `json:"completionTime,omitempty"`
}

// TaskBackendStatus is the observed state of a backend.
type TaskBackendStatus struct {
	// ObservedGeneration is the generation the Ready condition describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// TaskBackend says how to reach one vendor endpoint from one namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tb,categories=asynctask
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type TaskBackend struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || !has(self.credentialsSecretRef.namespace)",message="namespace is only allowed on ClusterTaskBackend: a TaskBackend reads Secrets in its own namespace",fieldPath=".credentialsSecretRef.namespace"
	// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !has(self.tls.caSecretRef) || !has(self.tls.caSecretRef.namespace)",message="namespace is only allowed on ClusterTaskBackend: a TaskBackend reads Secrets in its own namespace",fieldPath=".tls.caSecretRef.namespace"
	// +kubebuilder:validation:XValidation:rule="!has(self.allowedNamespaces)",message="allowedNamespaces is only allowed on ClusterTaskBackend: a TaskBackend serves its own namespace only",fieldPath=".allowedNamespaces"
	Spec TaskBackendSpec `json:"spec"`

	// +optional
	Status TaskBackendStatus `json:"status,omitempty"`
}

// TaskBackendList is a list of TaskBackends.
// +kubebuilder:object:root=true
type TaskBackendList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TaskBackend `json:"items"`
}

// ClusterTaskBackend says how to reach one vendor endpoint from every namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ctb,categories=asynctask
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type ClusterTaskBackend struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || (has(self.credentialsSecretRef.namespace) && self.credentialsSecretRef.namespace.size() > 0)",message="namespace is required on a ClusterTaskBackend",fieldPath=".credentialsSecretRef.namespace"
	// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !has(self.tls.caSecretRef) || (has(self.tls.caSecretRef.namespace) && self.tls.caSecretRef.namespace.size() > 0)",message="namespace is required on a ClusterTaskBackend",fieldPath=".tls.caSecretRef.namespace"
	Spec TaskBackendSpec `json:"spec"`

	// +optional
	Status TaskBackendStatus `json:"status,omitempty"`
}

// ClusterTaskBackendList is a list of ClusterTaskBackends.
// +kubebuilder:object:root=true
type ClusterTaskBackendList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterTaskBackend `json:"items"`
}

func init() {
	registerTypes(&TaskBackend{}, &TaskBackendList{}, &ClusterTaskBackend{}, &ClusterTaskBackendList{})
}
