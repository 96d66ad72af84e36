package extproc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/rkms/rkms/envelope"

	"github.com/rkms/rkms/extproc/jsonfield"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/extproc/reveal"
)

// RevealObserver is implemented by an [Observer] that also counts reveals (response.reveal):
// the server asks once, in NewServer. Labels are bounded: policy and rule are configured names
// (rule "default" for the default action), action an action's canonical text from the
// configuration (or "redact" when a mask or token met a value it cannot apply to).
type RevealObserver interface {
	// ObserveReveal is called after a response body was revealed: n values got action by rule.
	ObserveReveal(policy, rule, action string, n int)
}

// RevealedField is one line of a reveal audit record: the values that response.decrypt
// selector Field selected got Action, chosen by Rule, N times. It never holds a value.
type RevealedField struct {
	Field, Rule, Action string
	N                   int
}

// RevealAuditor writes the audit record of a response whose policy sets reveal.audit.
type RevealAuditor interface {
	// AuditReveal is called once per response body revealed, with ctx carrying the request id
	// ([RequestID]), the policy, the key id (tenant) and the action each field selector got.
	AuditReveal(ctx context.Context, policy, keyID string, fields []RevealedField)
}

// revealState is what a transformer needs to reveal the fields of one response body: the
// decisions for this caller by field number, how many values each got, and the tenant's token
// key once derived.
type revealState struct {
	rs        *policy.Reveals
	decisions []policy.Decision
	counts    []revealCount // by field number
	token     *reveal.TokenKey
}

// revealCount counts the values of one field: given the decision's action, or redacted (a
// mask or a token on a value it cannot apply to).
type revealCount struct{ n, redacted int }

// revealFor sets up t, a transformer of the response body, to reveal as the policy's reveal
// rules say for the stream's caller (its verified JWT, client certificate SANs and request
// headers). Policies without reveal rules reveal every field in full, as before.
func (p *processor) revealFor(t *transformer) {
	rs := p.pol.Reveals()
	if rs == nil {
		return
	}
	src := policy.Source{Headers: &p.headers, PeerURISAN: p.peerURI, PeerDNSSAN: p.peerDNS}
	if p.jwt != nil {
		src.JWT = jwtClaims{p.jwt}
	}
	st := &p.reveal
	st.rs = rs
	st.decisions = rs.Resolve(st.decisions, &src)
	st.counts = slices.Grow(st.counts[:0], len(st.decisions))[:len(st.decisions)]
	clear(st.counts)
	st.token = nil
	t.reveal = st
}

// observeReveal reports the reveals of one body to the RevealObserver and, when the policy
// audits reveals, to the RevealAuditor.
func (s *Server) observeReveal(ctx context.Context, pol *policy.Policy, keyID string, st *revealState) {
	if st == nil || st.rs == nil {
		return
	}
	var fields []RevealedField
	audit := s.auditor != nil && st.rs.Audit()
	for i, c := range st.counts {
		d := st.decisions[i]
		for _, x := range []struct {
			action string
			n      int
		}{{d.Action.String(), c.n}, {"redact", c.redacted}} {
			if x.n == 0 {
				continue
			}
			if s.revObs != nil {
				s.revObs.ObserveReveal(pol.Name(), d.Rule, x.action, x.n)
			}
			if audit {
				fields = append(fields, RevealedField{Field: st.rs.Fields()[i], Rule: d.Rule, Action: x.action, N: x.n})
			}
		}
	}
	if len(fields) > 0 {
		s.auditor.AuditReveal(ctx, pol.Name(), keyID, fields)
	}
}

// revealOpen is open for a field of a policy with reveal rules: raw is the stored JSON value,
// and the caller gets what its decision says. A ciphertext is opened only for the actions
// that need the plaintext (full, masks, token); redact and ciphertext still check that it is a
// ciphertext of this request's key id.
func (t *transformer) revealOpen(ctx context.Context, f *jsonfield.Field, fi int, raw []byte) ([]byte, error) {
	st := t.reveal
	d := &st.decisions[fi]
	text, ok := jsonString(raw)
	isCT := ok && envelope.IsCiphertext(text)
	switch {
	case string(raw) == "null":
		return raw, nil
	case !isCT && !t.legacy:
		return nil, newError(kindBadInput, t.phase, "field "+f.Selector.String()+" holds plaintext where a ciphertext is expected", nil)
	case !isCT:
		t.passed++
		if d.Action.Kind == reveal.Ciphertext {
			st.counts[fi].redacted++
			return st.rs.Redacted(), nil
		}
		return t.revealValue(ctx, f, fi, raw, true)
	}
	switch d.Action.Kind {
	case reveal.Ciphertext, reveal.Redact:
		if err := t.checkKeyID(f, text); err != nil {
			return nil, err
		}
		if d.Action.Kind == reveal.Redact {
			st.counts[fi].n++
			return st.rs.Redacted(), nil
		}
		st.counts[fi].n++
		return raw, nil
	}
	// A mask or token reads a string with a strict JSON string parser of its own, which refuses
	// what json.Valid refuses: only other plaintexts need json.Valid.
	pt, err := t.decrypt(ctx, f, text, d.Action.Kind == reveal.Full)
	if err != nil {
		return nil, err
	}
	checked := d.Action.Kind == reveal.Full
	if !checked && (len(pt) == 0 || pt[0] != '"') {
		if !json.Valid(pt) {
			return nil, t.notJSON(f)
		}
		checked = true
	}
	return t.revealValue(ctx, f, fi, pt, checked)
}

// revealValue applies field fi's decided action to pt, a plaintext JSON value in t.scratch
// (or a legacy plaintext). Masked and tokenized output is appended after pt in t.scratch.
// checked says pt is known to be JSON; otherwise a string the action refuses is checked before
// it is redacted (a string that is not JSON fails the response, as open's check would).
func (t *transformer) revealValue(ctx context.Context, f *jsonfield.Field, fi int, pt []byte, checked bool) ([]byte, error) {
	st := t.reveal
	a := &st.decisions[fi].Action
	if string(pt) == "null" {
		return pt, nil
	}
	var out []byte
	ok := true
	switch a.Kind {
	case reveal.Full:
		st.counts[fi].n++
		return pt, nil
	case reveal.Mask:
		out, ok = a.AppendMask(t.tail(pt), pt)
	case reveal.Token:
		if st.token == nil {
			k, err := t.tokenKey(ctx)
			if err != nil {
				return nil, err
			}
			st.token = k
		}
		out, ok = st.token.AppendToken(t.tail(pt), pt)
	default: // redact; ciphertext of a legacy plaintext is handled by the caller
		ok = false
	}
	if !ok {
		if !checked && !json.Valid(pt) {
			return nil, t.notJSON(f)
		}
		st.counts[fi].redacted++
		return st.rs.Redacted(), nil
	}
	st.counts[fi].n++
	t.keep(out)
	return out[t.tailStart:], nil
}

// tail returns t.scratch extended to end just after pt (which it holds) and records where the
// output written after it starts.
func (t *transformer) tail(pt []byte) []byte {
	if len(pt) > 0 && cap(t.scratch) > 0 && &t.scratch[:1][0] == &pt[:1][0] {
		t.tailStart = len(pt)
		return t.scratch[:len(pt)]
	}
	t.tailStart = 0 // a legacy plaintext: raw is the body's, not the scratch
	return t.scratch[:0]
}

// tokenKey derives the token key of the body's key id (the tenant) from the blind index root.
func (t *transformer) tokenKey(ctx context.Context) (*reveal.TokenKey, error) {
	root, err := indexRoot(ctx, t.keys)
	if err != nil {
		return nil, err
	}
	var k *reveal.TokenKey
	err = root.Secret.Use(func(b []byte) error {
		var err error
		k, err = reveal.DeriveTokenKey(b, t.keyID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reveal token key: %w", err)
	}
	return k, nil
}

// HasClaim implements policy.ClaimMatcher on a verified JWT payload (policy.ClaimHolds).
func (c jwtClaims) HasClaim(name, value string) bool {
	v, ok := c.s.GetFields()[name]
	return ok && policy.ClaimHolds(name, v.AsInterface(), value)
}
