package app

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
)

const inspectUsage = `usage: rkms inspect [--config FILE --policy NAME] [--json] < doc.json
       rkms inspect < ciphertext

Lists every ciphertext of a JSON document (or the one ciphertext on standard input) with its JSON
path, key id, key version, mode and format version, read from its header: no key is needed, and
nothing is decrypted. The label is not stored in a ciphertext (it is authenticated with it):
with --config and --policy, each ciphertext at a path the policy selects gets that field's label.
--json prints a JSON array instead of a table.
Exit status: 0 when every ciphertext parses, 1 when one does not, 2 on usage errors.
`

// inspected is one ciphertext found by rkms inspect (its --json form).
type inspected struct {
	Path          string  `json:"path"`
	Name          bool    `json:"member_name,omitempty"` // the ciphertext is a member name
	KeyID         string  `json:"key_id,omitempty"`
	Version       *uint32 `json:"version,omitempty"`
	Mode          string  `json:"mode,omitempty"`
	Label         string  `json:"label,omitempty"`
	FormatVersion uint8   `json:"format_version,omitempty"`
	Error         string  `json:"error,omitempty"`
}

func inspectCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, inspectUsage) }
	cfgPath := fs.String("config", "", "configuration file (YAML) holding the policy, for labels")
	name := fs.String("policy", "", "policy whose fields name the labels")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, inspectUsage)
		return 0
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || (*cfgPath == "") != (*name == "") {
		fmt.Fprint(stderr, inspectUsage)
		return 2
	}
	var pol *policy.Policy
	if *cfgPath != "" {
		cfg, err := loadSealConfig(*cfgPath)
		if err == nil {
			pol, err = findPolicy(cfg, *cfgPath, *name)
		}
		if err != nil {
			fmt.Fprintf(stderr, "rkms inspect: %v\n", err)
			return 1
		}
	}
	in, err := io.ReadAll(io.LimitReader(stdin, maxSealInput+1))
	if err == nil && len(in) > maxSealInput {
		err = fmt.Errorf("standard input is larger than %d bytes", maxSealInput)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rkms inspect: %v\n", err)
		return 1
	}
	found, err := inspectInput(bytes.TrimSpace(in), pol)
	if err != nil {
		fmt.Fprintf(stderr, "rkms inspect: %v\n", err)
		return 1
	}
	if *asJSON {
		err = printInspectJSON(stdout, found)
	} else {
		err = printInspectTable(stdout, found, pol != nil)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rkms inspect: %v\n", err)
		return 1
	}
	for _, f := range found {
		if f.Error != "" {
			return 1
		}
	}
	return 0
}

// inspectInput finds the ciphertexts of in: in itself when it is a bare ciphertext, else every
// string of the JSON document in (values and member names) that starts with the prefix.
func inspectInput(in []byte, pol *policy.Policy) ([]inspected, error) {
	if envelope.IsCiphertext(in) {
		return []inspected{describe("-", in)}, nil
	}
	labels, err := policyLabels(in, pol)
	if err != nil {
		return nil, err
	}
	all, err := jsonfield.NewPlan(nil, jsonfield.Options{})
	if err != nil {
		return nil, err
	}
	type hit struct {
		off  int
		name bool
		text []byte
	}
	var hits []hit
	// A plan without fields passes every string of the document to the check: the guard pass
	// of ext_proc's tripwires, here only reading.
	if _, err := all.Inspect(in, func(o *jsonfield.Outside) error {
		if envelope.IsCiphertext(o.Text) {
			hits = append(hits, hit{o.Offset, o.Name, bytes.Clone(o.Text)})
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("standard input is neither a ciphertext nor a JSON document: %w", err)
	}
	out := make([]inspected, 0, len(hits))
	for _, h := range hits {
		path, err := jsonfield.PathAt(in, h.off)
		if err != nil {
			return nil, err
		}
		d := describe(path, h.text)
		d.Name = h.name
		if !h.name {
			d.Label = labels[h.off]
		}
		out = append(out, d)
	}
	return out, nil
}

// describe parses one ciphertext's header.
func describe(path string, text []byte) inspected {
	h, err := envelope.Parse(text)
	if err != nil {
		return inspected{Path: path, Error: err.Error()}
	}
	return inspected{Path: path, KeyID: h.KeyID, Version: &h.KeyVersion, Mode: h.Mode.String(), FormatVersion: h.FormatVersion}
}

// policyLabels maps the offset of each value that pol's fields select in doc to its label
// (request fields first: labels of the response's decrypt fields match them).
func policyLabels(doc []byte, pol *policy.Policy) (map[int]string, error) {
	if pol == nil {
		return nil, nil
	}
	labels := map[int]string{}
	for _, fs := range []*policy.Fields{pol.Request(), pol.Response()} {
		if _, err := fs.Plan().VisitAt(doc, func(f *jsonfield.Field, off int, _ []byte) error {
			if _, ok := labels[off]; !ok {
				labels[off] = f.Label
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("standard input is neither a ciphertext nor a JSON document: %w", err)
		}
	}
	return labels, nil
}

func printInspectJSON(w io.Writer, found []inspected) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(found)
}

func printInspectTable(w io.Writer, found []inspected, withPolicy bool) error {
	if len(found) == 0 {
		_, err := fmt.Fprintln(w, "no ciphertext")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tKEY ID\tVERSION\tMODE\tLABEL\tFORMAT")
	for _, f := range found {
		path := f.Path
		if f.Name {
			path += " (member name)"
		}
		if f.Error != "" {
			fmt.Fprintf(tw, "%s\tinvalid: %s\n", path, f.Error)
			continue
		}
		label := f.Label
		if label == "" {
			label = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", path, f.KeyID, *f.Version, f.Mode, label, strconv.Itoa(int(f.FormatVersion)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !withPolicy {
		_, err := fmt.Fprintln(w, "(labels are not stored in ciphertexts: --config and --policy name them from the policy's fields)")
		return err
	}
	return nil
}
