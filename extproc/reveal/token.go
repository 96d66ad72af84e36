package reveal

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/rkms/rkms/extproc/blindindex"
)

// TokenPrefix starts every token; TokenLen is a token's length in bytes (the prefix and 22
// base64url characters: 128 bits of HMAC-SHA256).
const (
	TokenPrefix = "tok_"
	tokenBytes  = 16
	TokenLen    = len(TokenPrefix) + (tokenBytes*8+5)/6
)

// tokenInfo is the HKDF info prefix of token keys; the key id follows, length-prefixed. It
// differs from the blind index's ("rkms/v1 blind-index"), so a token key is never an index key.
const tokenInfo = "rkms/v1 reveal-token"

// TokenKey is the token key of one tenant (data key id). Its String never shows the bytes. A
// TokenKey is not safe for concurrent use: derive one per body.
type TokenKey struct {
	mac  hash.Hash // HMAC-SHA256 under the key; reset before each use
	sum  []byte
	text []byte // the decoded value being tokenized; cleared after each use
}

// DeriveTokenKey derives the token key of data key id keyID from the root key material (the
// blind index root, blindindex.RootKeyID version 1):
//
//	key = HKDF-SHA256(ikm = root, salt = none,
//	                  info = "rkms/v1 reveal-token" || u16be(len(key id)) || key id, length = 32)
func DeriveTokenKey(root []byte, keyID string) (*TokenKey, error) {
	if len(root) < 16 {
		return nil, errors.New("derive token key: root key shorter than 16 bytes")
	}
	if len(keyID) > 0xffff {
		return nil, errors.New("derive token key: key id too long")
	}
	b := make([]byte, 0, len(tokenInfo)+2+len(keyID))
	b = append(b, tokenInfo...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(keyID)))
	b = append(b, keyID...)
	k, err := hkdf.Key(sha256.New, root, nil, string(b), 32)
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	defer clear(k)
	return &TokenKey{mac: hmac.New(sha256.New, k)}, nil
}

func (k *TokenKey) String() string { return "[redacted token key]" }

// AppendToken appends to dst the JSON string of the token of raw, a JSON string or number, and
// reports whether raw was one (otherwise dst is returned unchanged and the caller redacts).
// A string is tokenized on its decoded text, a number on its canonical decimal text
// (blindindex.CanonicalNumber), so "42" and 42 have the same token:
//
//	token = "tok_" || base64url-nopad( HMAC-SHA256(key, text)[:16] )
func (k *TokenKey) AppendToken(dst, raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return dst, false
	}
	var ok bool
	switch c := raw[0]; {
	case c == '"' && len(raw) >= 2 && raw[len(raw)-1] == '"':
		k.text, ok = appendText(k.text[:0], raw[1:len(raw)-1])
	case c == '-' || c >= '0' && c <= '9':
		var err error
		k.text, err = blindindex.CanonicalNumber(k.text[:0], raw)
		ok = err == nil
	}
	defer clear(k.text)
	if !ok {
		return dst, false
	}
	k.mac.Reset()
	k.mac.Write(k.text)
	k.sum = k.mac.Sum(k.sum[:0])
	dst = append(dst, '"')
	dst = append(dst, TokenPrefix...)
	dst = base64.RawURLEncoding.AppendEncode(dst, k.sum[:tokenBytes])
	return append(dst, '"'), true
}
