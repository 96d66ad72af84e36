package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/jsonfield"
)

// Action is what a policy does with one field of a body, as [Policy.Explain] reports it.
type Action string

// Actions of a [Finding].
const (
	ActEncrypt Action = "encrypt"    // the value is sealed
	ActDecrypt Action = "decrypt"    // the ciphertext is opened
	ActRefuse  Action = "refuse"     // the message is refused because of this field
	ActLeave   Action = "left alone" // selected or tagged, but passed unchanged (why says why)
	ActRemove  Action = "remove"     // a blind index member: removed (rkms writes its own on encrypt)
)

// Finding is one field of a body and what the policy does with it. It holds no value.
type Finding struct {
	Action Action
	Path   string // JSON path of the value (or of the member, for a tagged name)
	Label  string // the field's label ("" when none applies)
	Index  string // for encrypt: the blind index written beside the value, "name (N bits, norms)"
	Why    string // for refuse, left alone and remove
	// Reveal is, for a decrypted field of a policy with response.reveal explained for a caller
	// ([Policy.ExplainFor]), what that caller sees: "mask:last4 (rule support)".
	Reveal string
}

// Explain reports, without keys, what p does with every selected value and every tripwire of
// body in one direction (the request when response is false): the fields it would encrypt and
// decrypt (under keyID, which decrypted ciphertexts must name), refuse or leave alone. It is
// what `rkms policy test` prints. A body that is not valid JSON is an error. Explain checks what
// can be checked without keys; a ciphertext that names keyID may still fail to authenticate.
func (p *Policy) Explain(body []byte, response bool, keyID string) ([]Finding, error) {
	return p.ExplainFor(body, response, keyID, nil)
}

// ExplainFor is [Policy.Explain] for the caller src describes (its verified claims, SANs and
// headers): a decrypted response field of a policy with response.reveal also says which action
// the caller gets and which rule chose it (Finding.Reveal). A nil src is Explain.
func (p *Policy) ExplainFor(body []byte, response bool, keyID string, src *Source) ([]Finding, error) {
	var decisions []Decision
	if response && src != nil && p.reveals != nil {
		decisions = p.reveals.Resolve(nil, src)
	}
	fs := &p.request
	if response {
		fs = &p.response
	}
	var out []Finding
	if fs.inbound {
		g := p.Guard(body)
		if _, err := fs.plan.Inspect(body, func(o *jsonfield.Outside) error {
			if err := g.Check(o); err != nil {
				out = append(out, g.finding(o, err))
			} else if o.Name && !o.Covered {
				if label, ok := g.taggedLabel(o.Text); ok {
					out = append(out, Finding{Action: ActLeave, Path: g.path(o.Offset), Label: label, Why: "allowed by an allow selector"})
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	_, err := fs.plan.VisitAt(body, func(f *jsonfield.Field, off int, raw []byte) error {
		path, _ := jsonfield.PathAt(body, off)
		if f.Remove {
			out = append(out, Finding{Action: ActRemove, Path: path, Why: "blind index member: rkms writes its own"})
			return nil
		}
		fd := Finding{Path: path, Label: f.Label}
		text, isString := jsonString(raw)
		isCT := isString && envelope.IsCiphertext(text)
		switch fs.Op(f) {
		case Encrypt:
			fd.Action = ActEncrypt
			if isCT {
				fd.Action, fd.Why = ActRefuse, "already a ciphertext"
			} else if spec := fs.Index(f); spec != nil {
				fd.Index = fmt.Sprintf("%s (%d bits", spec.Name, spec.Bits)
				if n := spec.Norm.String(); n != "" {
					fd.Index += ", " + strings.ReplaceAll(n, ",", " ")
				}
				fd.Index += ")"
			}
		case Decrypt:
			fd.Action = ActDecrypt
			if fi, ok := p.reveals.Field(f); ok && decisions != nil {
				d := decisions[fi]
				fd.Reveal = fmt.Sprintf("%s (rule %s)", d.Action, d.Rule)
			}
			switch {
			case isCT:
				if _, err := envelope.KeyVersionFor(text, keyID); err != nil {
					fd.Action, fd.Why = ActRefuse, "ciphertext unusable here (other key id, or malformed)"
				}
			case string(raw) == "null":
				fd.Action, fd.Why = ActLeave, "null"
			case p.legacy:
				fd.Action, fd.Why = ActLeave, "plaintext (legacy_plaintext: pass)"
			default:
				fd.Action, fd.Why = ActRefuse, "plaintext where a ciphertext is expected"
			}
		}
		out = append(out, fd)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (g *Guard) finding(o *jsonfield.Outside, err error) Finding {
	fd := Finding{Action: ActRefuse, Path: g.path(o.Offset)}
	var pe *Error
	switch {
	case bytes.Contains(o.Text, []byte(CiphertextMarker)):
		fd.Why = "ciphertext outside the encrypted fields"
	case errors.As(err, &pe):
		fd.Label, _ = g.taggedLabel(o.Text)
		fd.Why = "tagged name not encrypted here"
	default:
		fd.Why = err.Error()
	}
	return fd
}

// jsonString returns the content of raw when raw is a JSON string.
func jsonString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// String renders a finding as one line of `rkms policy test`.
func (f Finding) String() string {
	s := fmt.Sprintf("%-10s %s", f.Action, f.Path)
	if f.Label != "" {
		s += fmt.Sprintf("  label=%s", f.Label)
	}
	if f.Index != "" {
		s += "  index=" + f.Index
	}
	if f.Reveal != "" {
		s += "  reveal=" + f.Reveal
	}
	if f.Why != "" {
		s += "  (" + f.Why + ")"
	}
	return s
}
