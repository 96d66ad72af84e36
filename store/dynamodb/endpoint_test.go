package dynamodb

import (
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in, def   string
		want      endpoint
		wantError string
	}{
		{in: "eu-west-1", want: endpoint{region: "eu-west-1"}},
		{in: " us-gov-west-1 ", want: endpoint{region: "us-gov-west-1"}},
		{in: "http://127.0.0.1:8000", def: "us-east-1", want: endpoint{region: "us-east-1", url: "http://127.0.0.1:8000"}},
		{in: "https://dynamodb.eu-west-1.amazonaws.com/", def: "us-east-1", want: endpoint{region: "us-east-1", url: "https://dynamodb.eu-west-1.amazonaws.com/"}},
		{in: "eu-west-1=https://vpce-1.dynamodb.eu-west-1.vpce.amazonaws.com", want: endpoint{region: "eu-west-1", url: "https://vpce-1.dynamodb.eu-west-1.vpce.amazonaws.com"}},
		{in: "", wantError: "empty"},
		{in: "http://127.0.0.1:8000", wantError: "no region"},
		{in: "=http://127.0.0.1:8000", def: "us-east-1", wantError: "no region"},
		{in: "eu-west-1=", wantError: "scheme"},
		{in: "EU-WEST-1", wantError: "lowercase"},
		{in: "1eu", wantError: "lowercase"},
		{in: "eu west", wantError: "lowercase"},
		{in: strings.Repeat("a", 33), wantError: "too long"},
		{in: "ftp://host", def: "r", wantError: "scheme"},
		{in: "http://", def: "r", wantError: "no host"},
		{in: "http://:80", def: "r", wantError: "no host"},
		{in: "http://user:pw@host", def: "r", wantError: "credentials"},
		{in: "http://host/path", def: "r", wantError: "only"},
		{in: "http://host/?q=1", def: "r", wantError: "only"},
		{in: "http://host#f", def: "r", wantError: "only"},
		{in: "r=http://host\x7f", wantError: "bad URL"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseEndpoint(tc.in, tc.def)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("parseEndpoint(%q) = %+v, %v; want error containing %q", tc.in, got, err, tc.wantError)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseEndpoint(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzParseEndpoint checks that parsing never panics and that an accepted entry always has a valid
// region and, if any, a URL that parses again.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"eu-west-1", "http://127.0.0.1:8000", "eu-west-1=https://h", "=", "a=b=c", "http://[::1]:80"} {
		f.Add(s, "us-east-1")
	}
	f.Fuzz(func(t *testing.T, s, def string) {
		ep, err := parseEndpoint(s, def)
		if err != nil {
			return
		}
		if err := checkRegion(ep.region); err != nil {
			t.Fatalf("accepted %q with a bad region: %v", s, err)
		}
		if ep.url != "" {
			if err := checkURL(ep.url); err != nil {
				t.Fatalf("accepted %q with a bad URL: %v", s, err)
			}
		}
	})
}
