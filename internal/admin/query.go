package admin

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// query is a request's query parameters, each given at most once.
type query map[string]string

// parseQuery reads a raw query strictly. Unlike net/url's ParseQuery it does not turn `+` into a
// space: `+` is a key id character (envelope.ValidateKeyID), so `?id=a+b` means the id "a+b",
// the same as `?id=a%2Bb`. Percent escapes are decoded; a bad escape, a semicolon or a parameter
// given twice is an error.
func parseQuery(raw string) (query, error) {
	q := query{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if strings.Contains(part, ";") {
			return nil, errors.New("invalid query: semicolons are not separators")
		}
		rk, rv, _ := strings.Cut(part, "=")
		k, err := url.PathUnescape(rk)
		if err != nil {
			return nil, fmt.Errorf("invalid query: bad escape in a parameter name: %w", err)
		}
		v, err := url.PathUnescape(rv)
		if err != nil {
			return nil, fmt.Errorf("invalid query: bad escape in parameter %q: %w", k, err)
		}
		if _, dup := q[k]; dup {
			return nil, fmt.Errorf("query parameter %q given more than once", k)
		}
		q[k] = v
	}
	return q, nil
}

// unknown returns an error naming q's parameters that are not in allowed, or nil.
func (q query) unknown(allowed []string) error {
	var extra []string
	for k := range q {
		if !slices.Contains(allowed, k) {
			extra = append(extra, strconv.Quote(k))
		}
	}
	if len(extra) == 0 {
		return nil
	}
	slices.Sort(extra)
	noun := "parameter"
	if len(extra) > 1 {
		noun = "parameters"
	}
	return fmt.Errorf("unknown query %s %s (this call takes: %s)", noun, strings.Join(extra, ", "), strings.Join(allowed, ", "))
}

// boolean reads an optional true/false parameter.
func (q query) boolean(name string, def bool) (bool, error) {
	v, ok := q[name]
	switch {
	case !ok:
		return def, nil
	case v == "true":
		return true, nil
	case v == "false":
		return false, nil
	}
	return false, fmt.Errorf("query parameter %q must be true or false", name)
}

// number reads an optional decimal parameter in [lo, hi]; absent is 0.
func (q query) number(name string, lo, hi uint64) (uint64, error) {
	v, ok := q[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("query parameter %q must be a whole number from %d to %d", name, lo, hi)
	}
	return n, nil
}
