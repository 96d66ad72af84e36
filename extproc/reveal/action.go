package reveal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind is what an [Action] does with a decrypted value.
type Kind uint8

// Kinds of action. The zero Kind is not an action.
const (
	Full       Kind = iota + 1 // the decrypted value
	Mask                       // a masked string (Action.Prefix, Action.Suffix, Action.Email)
	Redact                     // null, or the policy's redaction string
	Token                      // a keyed HMAC token under the tenant's token key
	Ciphertext                 // the stored ciphertext, unchanged
)

// String returns the kind's name as written in the configuration ("mask" for every mask).
func (k Kind) String() string {
	switch k {
	case Full:
		return "full"
	case Mask:
		return "mask"
	case Redact:
		return "redact"
	case Token:
		return "token"
	case Ciphertext:
		return "ciphertext"
	}
	return "none"
}

// MaxKeep bounds each number of mask:keep(prefix,suffix).
const MaxKeep = 64

// Action is one parsed reveal action. The zero Action is invalid.
type Action struct {
	Kind Kind
	// Mask only: code points kept at the start and at the end (everything else becomes '*');
	// Email keeps the first code point of the local part and the domain instead.
	Prefix, Suffix int
	Email          bool
	name           string // canonical text
}

// String returns the action's canonical text: "full", "mask:last4", "mask:keep(2,3)", ...
func (a Action) String() string { return a.name }

// ErrSyntax is wrapped by every error of [Parse].
var ErrSyntax = errors.New("invalid reveal action")

// Parse parses an action: full, redact, token, ciphertext, mask:last4, mask:first6last4,
// mask:email or mask:keep(P,S) with P and S decimal integers in 0..[MaxKeep] (no sign, no
// spaces, no leading zeros). Errors wrap [ErrSyntax] and quote the action (configuration,
// never a value).
func Parse(s string) (Action, error) {
	switch s {
	case "full":
		return Action{Kind: Full, name: s}, nil
	case "redact":
		return Action{Kind: Redact, name: s}, nil
	case "token":
		return Action{Kind: Token, name: s}, nil
	case "ciphertext":
		return Action{Kind: Ciphertext, name: s}, nil
	case "mask:last4":
		return Action{Kind: Mask, Suffix: 4, name: s}, nil
	case "mask:first6last4":
		return Action{Kind: Mask, Prefix: 6, Suffix: 4, name: s}, nil
	case "mask:email":
		return Action{Kind: Mask, Email: true, name: s}, nil
	}
	if len(s) > 64 {
		return Action{}, fmt.Errorf("%w: %.64q... is too long", ErrSyntax, s)
	}
	args, ok := strings.CutPrefix(s, "mask:keep(")
	if ok {
		args, ok = strings.CutSuffix(args, ")")
	}
	if !ok {
		return Action{}, fmt.Errorf("%w %q: want full, redact, token, ciphertext, mask:last4, mask:first6last4, mask:email or mask:keep(PREFIX,SUFFIX)", ErrSyntax, s)
	}
	ps, ss, ok := strings.Cut(args, ",")
	if !ok {
		return Action{}, fmt.Errorf("%w %q: mask:keep takes two numbers, mask:keep(PREFIX,SUFFIX)", ErrSyntax, s)
	}
	p, err := keepCount(ps)
	if err != nil {
		return Action{}, fmt.Errorf("%w %q: prefix: %v", ErrSyntax, s, err)
	}
	n, err := keepCount(ss)
	if err != nil {
		return Action{}, fmt.Errorf("%w %q: suffix: %v", ErrSyntax, s, err)
	}
	return Action{Kind: Mask, Prefix: p, Suffix: n, name: s}, nil
}

// keepCount parses one number of mask:keep: 0..MaxKeep in canonical decimal.
func keepCount(s string) (int, error) {
	if s == "" || len(s) > 2 || s[0] == '0' && len(s) > 1 {
		return 0, fmt.Errorf("want a number 0..%d without sign, spaces or leading zeros", MaxKeep)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("want a number 0..%d without sign, spaces or leading zeros", MaxKeep)
		}
	}
	n, _ := strconv.Atoi(s)
	if n > MaxKeep {
		return 0, fmt.Errorf("%d is more than %d", n, MaxKeep)
	}
	return n, nil
}
