package dynamodb

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// endpoint is one parsed entry of [Config.Endpoints].
type endpoint struct {
	region string // signing region, and the SDK's endpoint region when url is empty
	url    string // base endpoint URL, or "" for the SDK's default endpoint of region
}

// name identifies the endpoint in errors.
func (e endpoint) name() string {
	if e.url == "" {
		return e.region
	}
	return e.region + "=" + e.url
}

// parseEndpoint parses one [Config.Endpoints] entry: "REGION", "URL" (signed for defaultRegion) or
// "REGION=URL".
func parseEndpoint(s, defaultRegion string) (endpoint, error) {
	s = strings.TrimSpace(s)
	region, rawURL, hasRegion := strings.Cut(s, "=")
	if hasRegion && strings.Contains(region, "://") { // an "=" inside a URL, not REGION=URL
		hasRegion = false
	}
	switch {
	case s == "":
		return endpoint{}, errors.New("empty endpoint")
	case hasRegion:
		// REGION=URL
	case strings.Contains(s, "://"):
		region, rawURL = defaultRegion, s
	default:
		region, rawURL = s, ""
	}
	if err := checkRegion(region); err != nil {
		return endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	if hasRegion || rawURL != "" {
		if err := checkURL(rawURL); err != nil {
			return endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
		}
	}
	return endpoint{region: region, url: rawURL}, nil
}

// checkRegion accepts AWS-style region names: a lowercase letter, then lowercase letters, digits
// and hyphens, at most 32 characters.
func checkRegion(r string) error {
	if r == "" {
		return errors.New("no region: set Region or name the region as REGION=URL")
	}
	if len(r) > 32 {
		return fmt.Errorf("region %q is too long", r)
	}
	for i, c := range r {
		ok := c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-')
		if !ok {
			return fmt.Errorf("region %q: want lowercase letters, digits and hyphens", r)
		}
	}
	return nil
}

// checkURL accepts http(s)://host[:port][/] with nothing else.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL scheme %q, want http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("URL has no host")
	case u.User != nil:
		return errors.New("URL must not carry credentials")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
		return errors.New("URL must be scheme://host[:port] only")
	}
	return nil
}
