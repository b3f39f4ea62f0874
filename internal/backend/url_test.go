package backend

import (
	"strings"
	"testing"
)

func TestBaseURLAcceptsOnlyAnHTTPEndpoint(t *testing.T) {
	tests := map[string]struct {
		raw     string
		want    string
		wantErr string
	}{
		"https":                 {raw: "https://vrni.example.com", want: "https://vrni.example.com"},
		"trailing slash":        {raw: "http://10.0.0.1:8080/zstack/", want: "http://10.0.0.1:8080/zstack"},
		"escaped path is kept":  {raw: "https://h.example.com/a%2Fb/", want: "https://h.example.com/a%2Fb"},
		"no scheme":             {raw: "vrni.example.com", wantErr: `spec.url "vrni.example.com" is not an http or https URL`},
		"ftp":                   {raw: "ftp://example.com", wantErr: `spec.url "ftp://example.com" is not an http or https URL`},
		"no host":               {raw: "https://", wantErr: `spec.url "https://" is not an http or https URL`},
		"port without host":     {raw: "https://:8443", wantErr: `spec.url "https://:8443" is not an http or https URL`},
		"not parseable":         {raw: "https://h/%zz", wantErr: `spec.url "https://h/%zz" is not an http or https URL`},
		"user information":      {raw: "https://admin:secret@apig.example.com", wantErr: "spec.url must not hold user information (user:password@): put credentials in the credentials Secret"},
		"user information, ftp": {raw: "ftp://admin:secret@h", wantErr: "spec.url is not an http or https URL"},
		"query":                 {raw: "https://h.example.com/?region=eu", wantErr: `spec.url "https://h.example.com/?region=eu" must not have a query or fragment`},
		"empty query":           {raw: "https://h.example.com?", wantErr: "must not have a query or fragment"},
		"fragment":              {raw: "https://h.example.com/#top", wantErr: "must not have a query or fragment"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u, err := BaseURL("spec.url", tc.raw)
			if tc.wantErr == "" {
				if err != nil || u.String() != tc.want {
					t.Fatalf("BaseURL(%q) = %v, %v; want %s", tc.raw, u, err, tc.want)
				}
				return
			}
			if KindOf(err) != KindInvalidConfig || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("BaseURL(%q) error %v; want InvalidConfig containing %q", tc.raw, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("BaseURL(%q) quoted the password: %v", tc.raw, err)
			}
		})
	}
}
