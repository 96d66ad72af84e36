package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"go.yaml.in/yaml/v3"
)

// decode lays the parsed file doc over cfg and returns every problem of shape: unknown keys
// (with the key path and a suggestion) and values of the wrong type, each with its line. It walks
// the node tree against the type of cfg instead of stopping at the decoder's first error:
// offending entries are removed from doc, and what remains is decoded, so that the checks of
// values still run on everything that could be read.
func decode(doc *yaml.Node, cfg *Config) Problems {
	var ps Problems
	if !walk(doc, reflect.TypeOf(cfg).Elem(), "", &ps) {
		return ps // not a mapping of keys: nothing to decode
	}
	if err := doc.Decode(cfg); err != nil {
		// Not expected after the walk (it tries each leaf the way Decode will); reported rather
		// than lost.
		ps = append(ps, yamlProblem(err))
	}
	return ps
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// walk checks n against t at path, appending problems to ps; it reports whether n may stay in
// the tree (false: the caller removes it).
func walk(n *yaml.Node, t reflect.Type, path string, ps *Problems) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return true // `key:` with no value leaves the default's zero; the value checks say if that is wrong
	}
	bad := func(want string) bool {
		*ps = append(*ps, Problem{Line: n.Line, Path: path, Msg: fmt.Sprintf("must be %s (got %s)", want, describe(n))})
		return false
	}
	switch {
	case reflect.PointerTo(t).Implements(unmarshalerType):
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			*ps = append(*ps, Problem{Line: n.Line, Path: path, Msg: stripLine(err.Error())})
			return false
		}
		return true
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			return bad("a mapping of keys")
		}
		walkMapping(n, t, path, ps)
		return true
	case t.Kind() == reflect.Pointer: // an optional section or value (policy.Direction.Reveal)
		return walk(n, t.Elem(), path, ps)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String: // reveal fields and conditions
		if n.Kind != yaml.MappingNode {
			return bad("a mapping")
		}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				*ps = append(*ps, Problem{Line: k.Line, Path: path, Msg: "keys must be strings"})
				continue
			}
			if walk(v, t.Elem(), joinPath(path, k.Value), ps) {
				kept = append(kept, k, v)
			}
		}
		n.Content = kept
		return true
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("a list")
		}
		for i, item := range n.Content {
			if !walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps) {
				// Keep the entry, so that later indices still match the file, as its zero value.
				*item = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: item.Line, Column: item.Column}
			}
		}
		return true
	}
	if n.Kind != yaml.ScalarNode {
		return bad(scalarWant(t))
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return bad(scalarWant(t))
	}
	return true
}

// walkMapping checks the keys of mapping n against the yaml fields of struct t, removing unknown
// keys and values that cannot be decoded.
func walkMapping(n *yaml.Node, t reflect.Type, path string, ps *Problems) {
	fields := yamlFields(t)
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		keyPath := joinPath(path, k.Value)
		f, ok := fields[k.Value]
		switch {
		case k.Tag == "!!merge":
			kept = append(kept, k, v) // `<<: *anchor`: the decoder merges it
			continue
		case !ok:
			*ps = append(*ps, Problem{Line: k.Line, Path: keyPath, Msg: unknownKey(k.Value, t)})
			continue
		}
		if walk(v, f.Type, keyPath, ps) {
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
}

// yamlFields maps the YAML keys of struct t to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for _, name := range yamlKeys(t) {
		for i := range t.NumField() {
			if f := t.Field(i); yamlKey(f) == name {
				out[name] = f
			}
		}
	}
	return out
}

// yamlKeys lists the YAML keys of struct t in field order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

// unknownKey says that key is not one of struct t's and suggests the nearest known key.
func unknownKey(key string, t reflect.Type) string {
	known := yamlKeys(t)
	if s := suggest(key, known); s != "" {
		return fmt.Sprintf("unknown key (did you mean %s?)", s)
	}
	return fmt.Sprintf("unknown key (known: %s)", strings.Join(known, ", "))
}

// suggest returns the known key nearest to key in edit distance, when it is near enough to be a
// typo: a distance of at most a third of the key's length, rounded (at least 1; "tabel" for
// table is 2 edits in 5), measured against the
// whole known key or, for keys of three characters or more, its first word or a prefix of its
// length ("tokn" for token_file).
func suggest(key string, known []string) string {
	best, bestD := "", max((len(key)+1)/3, 1)
	for _, k := range slices.Sorted(slices.Values(known)) {
		d := levenshtein.ComputeDistance(key, k)
		if len(key) >= 3 {
			first, _, _ := strings.Cut(k, "_")
			d = min(d, levenshtein.ComputeDistance(key, first))
			if len(k) > len(key) {
				d = min(d, levenshtein.ComputeDistance(key, k[:len(key)]))
			}
		}
		if d <= bestD && (best == "" || d < bestD) {
			best, bestD = k, d
		}
	}
	return best
}

func joinPath(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	}
	return path + "." + key
}

// scalarWant says in words what a scalar of type t looks like.
func scalarWant(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 500ms, 30s or 1m"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}

// describe says what the file has at n: a scalar quoted, else its kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return fmt.Sprintf("%q", v)
}

// stripLine removes the decoder's "line N: " from an error message (the problem has the line).
func stripLine(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return m[2]
	}
	return msg
}
