package keyservice

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

// List paging limits: a request without a limit gets DefaultListLimit ids at most.
const (
	DefaultListLimit = 100
	MaxListLimit     = store.MaxListLimit
)

// ListRequest selects one page of [Session.List].
type ListRequest struct {
	// Prefix keeps the ids that start with it; empty: all.
	Prefix string
	// Cursor is the Next of the previous page; empty: the first page. It is opaque.
	Cursor string
	// Limit bounds the records examined for the page: 1..MaxListLimit, 0: DefaultListLimit.
	Limit int
}

// ListResult is one page of [Session.List]. A page can hold fewer ids than the limit while more
// follow; the listing ends when Next is empty.
type ListResult struct {
	IDs     []string // live key ids, sorted within the page
	Deleted []string // deleted ids (tombstones), sorted within the page
	Next    string   // opaque cursor of the next page (URL-safe); empty at the end
}

// List returns one page of key ids; it reads no key and creates nothing. It is audited as op
// list with the prefix as the key id. Errors are *Error: InvalidArgument for a bad prefix,
// cursor or limit.
func (ss *Session) List(ctx context.Context, req ListRequest) (ListResult, error) {
	ctx = audit.WithWho(ctx, ss.who)
	after, err := decodeCursor(req.Cursor)
	if err != nil {
		return ListResult{}, ss.refuse(ctx, req.Prefix, "invalid cursor: pass the next value of the previous page", err)
	}
	limit := req.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return ListResult{}, ss.refuse(ctx, req.Prefix, fmt.Sprintf("invalid limit: 1 to %d", MaxListLimit),
			fmt.Errorf("list limit %d: %w", req.Limit, keyring.ErrInvalidID))
	}
	if req.Prefix != "" {
		if err := keyring.ValidateID(req.Prefix); err != nil {
			return ListResult{}, ss.refuse(ctx, req.Prefix, "invalid prefix: "+msgIDRule[len("invalid key id: "):], err)
		}
	}
	// The list permission; a prefix outside the credential's id prefixes is refused, and a
	// page shows only the ids the credential covers.
	if err := ss.permit(ctx, access.List, req.Prefix); err != nil {
		return ListResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	defer cancel()
	page, err := ss.s.keys.List(ctx, req.Prefix, after, limit)
	ss.s.audit.Record(ctx, audit.OpList, req.Prefix, 0, err)
	if err != nil {
		return ListResult{}, ss.fail(audit.OpList, err)
	}
	covered := func(ids []string) []string {
		return slices.DeleteFunc(ids, func(id string) bool { return !ss.p.Covers(id) })
	}
	return ListResult{IDs: covered(page.IDs), Deleted: covered(page.Deleted), Next: encodeCursor(page.Next)}, nil
}

// refuse audits a list request refused as invalid and returns the InvalidArgument error.
func (ss *Session) refuse(ctx context.Context, prefix, msg string, cause error) error {
	ss.s.audit.Record(ctx, audit.OpList, prefix, 0, cause)
	return &Error{Class: InvalidArgument, Msg: msg, Err: cause}
}

// Cursors are the store's cursor in unpadded base64url: opaque to clients and safe in a URL
// query without escaping.
func encodeCursor(after string) string { return base64.RawURLEncoding.EncodeToString([]byte(after)) }

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) > store.MaxIDLen {
		return "", fmt.Errorf("list cursor is not one this service issued: %w", keyring.ErrInvalidID)
	}
	return string(b), nil
}
