package backend

import (
	"fmt"
	"net/url"
	"strings"
)

// BaseURL checks a vendor endpoint of the spec (field names it: "spec.url") the one way every vendor package
// needs: http or https, with a host, without user information (credentials belong in the Secret), and
// without a query or fragment (the vendor's paths are appended to it). It returns the URL without its
// trailing slash. The error is KindInvalidConfig, and quotes the URL only when it cannot hold a password.
func BaseURL(field, raw string) (*url.URL, error) {
	quoted := fmt.Sprintf(" %q", raw)
	if strings.Contains(raw, "@") {
		quoted = ""
	}
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	switch {
	case err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return nil, Errorf(KindInvalidConfig, "%s%s is not an http or https URL", field, quoted)
	case u.User != nil:
		return nil, Errorf(KindInvalidConfig, "%s must not hold user information (user:password@): put credentials in the credentials Secret", field)
	case strings.ContainsAny(raw, "?#"):
		return nil, Errorf(KindInvalidConfig, "%s%s must not have a query or fragment: the vendor's paths are appended to it", field, quoted)
	}
	return u, nil
}
