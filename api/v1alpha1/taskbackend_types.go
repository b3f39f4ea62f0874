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
type TaskBackendSpec struct {
	// Type is the vendor protocol.
	// +required
	Type BackendType `json:"type"`

	// URL is the base URL of the vendor API, e.g. https://vrni.example.com.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'http' || url(self).getScheme() == 'https') && url(self).getHostname().size() > 0",message="must be an http or https URL with a host"
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
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be at least 1s"
	RequestTimeout *metav1.Duration `json:"requestTimeout,omitempty"`

	// PollInterval is the default poll interval of the tasks that use this backend.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="must be at least 1s"
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`

	// RateLimit caps the requests the operator sends this backend, all tasks together.
	// +optional
	// +kubebuilder:default={qps: 20, burst: 40}
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

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
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +kubebuilder:default=20
	QPS int32 `json:"qps"`

	// Burst is the most requests sent at once.
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

// HTTPSettings holds the settings of the generic HTTP backend; its fields come with that backend.
type HTTPSettings struct{}

// TaskBackendStatus is the observed state of a backend.
type TaskBackendStatus struct {
	// ObservedGeneration is the generation the Ready condition describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
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
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || !has(self.credentialsSecretRef.namespace)",message="namespace is only allowed on ClusterTaskBackend: a TaskBackend reads Secrets in its own namespace",fieldPath=".credentialsSecretRef.namespace"
	// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !has(self.tls.caSecretRef) || !has(self.tls.caSecretRef.namespace)",message="namespace is only allowed on ClusterTaskBackend: a TaskBackend reads Secrets in its own namespace",fieldPath=".tls.caSecretRef.namespace"
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
	metav1.TypeMeta   `json:",inline"`
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
	SchemeBuilder.Register(&TaskBackend{}, &TaskBackendList{}, &ClusterTaskBackend{}, &ClusterTaskBackendList{})
}
