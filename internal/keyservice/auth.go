package keyservice

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
)

// Credential is one way to authenticate with the service and what it grants. Exactly one of
// Token and Subject is set.
type Credential struct {
	// Principal is who the caller is once authenticated: its name (audit records, metrics), the
	// operations it may do and the key id prefixes it may do them on.
	Principal access.Principal
	// Token is a bearer token (at least 16 characters; the caller of New checks its source).
	Token string
	// Subject is a client certificate identity: a URI SAN (spiffe://...) or DNS SAN of the
	// certificate a mutual-TLS listener verified ([Caller.Identities]).
	Subject string
}

type tokenCredential struct {
	digest    [sha256.Size]byte
	principal access.Principal
}

// credentials are the service's credentials, indexed for Authenticate.
type credentials struct {
	tokens   []tokenCredential
	subjects map[string]access.Principal
}

// newCredentials checks and indexes creds: names valid and distinct, known operations, exactly
// one of token and subject, tokens and subjects distinct.
func newCredentials(creds []Credential) (*credentials, error) {
	if len(creds) == 0 {
		return nil, errors.New("keyservice: no credentials (a token or admin credentials are required)")
	}
	c := &credentials{subjects: map[string]access.Principal{}}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	for _, cr := range creds {
		p := cr.Principal
		if err := access.CheckName(p.Name); err != nil {
			return nil, fmt.Errorf("keyservice: credential name: %w", err)
		}
		if names[p.Name] {
			return nil, fmt.Errorf("keyservice: duplicate credential name %q", p.Name)
		}
		names[p.Name] = true
		for _, op := range p.Allow {
			if !access.Known(op) {
				return nil, fmt.Errorf("keyservice: credential %q: unknown operation %q", p.Name, op)
			}
		}
		switch {
		case (cr.Token == "") == (cr.Subject == ""):
			return nil, fmt.Errorf("keyservice: credential %q: needs exactly one of a token and a subject", p.Name)
		case cr.Token != "":
			d := sha256.Sum256([]byte(cr.Token))
			if digests[d] {
				return nil, fmt.Errorf("keyservice: credential %q: token shared with another credential", p.Name)
			}
			digests[d] = true
			c.tokens = append(c.tokens, tokenCredential{digest: d, principal: p})
		default:
			if _, dup := c.subjects[cr.Subject]; dup {
				return nil, fmt.Errorf("keyservice: credential %q: subject shared with another credential", p.Name)
			}
			c.subjects[cr.Subject] = p
		}
	}
	return c, nil
}

// Caller is who makes a call, as its transport saw it.
type Caller struct {
	API     string // audit.APIHTTP or audit.APIGRPC
	Remote  string // peer address; failed authentications are counted per host
	Subject string // verified client certificate subject (mutual TLS), else empty
	// Identities are the URI and DNS SANs of the verified client certificate (mutual TLS; see
	// [TLSIdentities]), matched against credential subjects.
	Identities []string
	// Authorization is the one authorization value presented ("Bearer <token>"; the scheme is
	// case-insensitive, the token is not). Empty: none.
	Authorization string
}

// TLSIdentities returns the URI SANs, then the DNS SANs, of the client certificate of cs when
// it was verified (a mutual-TLS listener); nil otherwise.
func TLSIdentities(cs *tls.ConnectionState) []string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	ids := make([]string, 0, len(leaf.URIs)+len(leaf.DNSNames))
	for _, u := range leaf.URIs {
		ids = append(ids, u.String())
	}
	return append(ids, leaf.DNSNames...)
}

// Session is an authenticated caller: key operations are only reachable through one, and each
// checks the principal's permission first.
type Session struct {
	s   *Service
	who audit.Who
	p   access.Principal
}

// Principal is who the session's caller is and what it may do (for an operation that filters
// what it shows, such as a listing: [access.Principal.Covers]).
func (ss *Session) Principal() access.Principal { return ss.p }

// Authenticate identifies c unless c's address failed too often: by its bearer token when it
// presents an authorization value (compared in constant time with every credential's token,
// both sides hashed to a fixed length first, so neither which credential matched nor the
// token's length or content leaks through timing), else by its verified client certificate's
// identities. A refusal is an *Error of class Throttled or Unauthenticated, counted for
// OnAuthFailure and the address's throttle, and audited as denied for op on id (op empty: the
// request is no key operation, nothing is audited).
//
// A wrong token is refused even when the certificate would match a subject: the caller said who
// it is. A certificate whose identities match two credentials is refused as ambiguous.
func (s *Service) Authenticate(ctx context.Context, c Caller, op, id string) (*Session, error) {
	who := audit.Who{API: c.API, Remote: c.Remote, Subject: c.Subject}
	if blocked, left := s.limiter.Blocked(c.Remote); blocked {
		s.onFail(true)
		s.deny(ctx, who, op, id)
		// Whole seconds, rounded past the end of the window: never sooner than it ends.
		return nil, &Error{Class: Throttled, Msg: msgThrottled, RetryAfter: time.Duration(int(left.Seconds())+1) * time.Second}
	}
	var p access.Principal
	var ok bool
	if c.Authorization != "" {
		p, ok = s.creds.byToken(c.Authorization)
	} else {
		p, ok = s.bySubject(c)
	}
	if !ok {
		s.limiter.Fail(c.Remote)
		s.onFail(false)
		s.deny(ctx, who, op, id)
		return nil, &Error{Class: Unauthenticated, Msg: msgUnauthenticated}
	}
	who.Principal = p.Name
	return &Session{s: s, who: who, p: p}, nil
}

// byToken finds the credential whose token authorization carries. Every token is compared, and
// the match is selected without a branch, so the time taken does not depend on which matched.
func (c *credentials) byToken(authorization string) (access.Principal, bool) {
	const scheme = "bearer "
	a := authorization
	schemeOK := len(a) > len(scheme) && strings.EqualFold(a[:len(scheme)], scheme)
	got := sha256.Sum256([]byte(strings.TrimSpace(a[min(len(a), len(scheme)):])))
	match := -1
	for i := range c.tokens {
		eq := subtle.ConstantTimeCompare(got[:], c.tokens[i].digest[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if !schemeOK || match < 0 {
		return access.Principal{}, false
	}
	return c.tokens[match].principal, true
}

// bySubject finds the credential one of c's certificate identities names; none, or two
// different ones, is a refusal.
func (s *Service) bySubject(c Caller) (access.Principal, bool) {
	var found *access.Principal
	for _, id := range c.Identities {
		p, ok := s.creds.subjects[id]
		if !ok {
			continue
		}
		if found != nil && found.Name != p.Name {
			s.log.Warn("client certificate matches two admin credentials: refused", "remote", c.Remote,
				"credentials", []string{found.Name, p.Name})
			return access.Principal{}, false
		}
		found = &p
	}
	if found == nil {
		return access.Principal{}, false
	}
	return *found, true
}

func (s *Service) deny(ctx context.Context, who audit.Who, op, id string) {
	if op != "" {
		s.audit.Record(audit.WithWho(ctx, who), op, id, 0, audit.ErrDenied)
	}
}

// permit refuses op on id unless the session's principal allows it: the refusal is audited
// (ctx carries the caller), counted for OnForbidden and returned as a Forbidden *Error.
func (ss *Session) permit(ctx context.Context, op, id string) error {
	if ss.p.Allows(op, id) {
		return nil
	}
	ss.s.audit.Record(ctx, op, id, 0, audit.ErrForbidden)
	ss.s.onForbidden(ss.p.Name, op)
	return &Error{Class: Forbidden, Msg: forbiddenMsg(op), Err: fmt.Errorf("credential %q, %s: %w", ss.p.Name, op, audit.ErrForbidden)}
}
