package audit

import (
	"context"
	"log/slog"
)

// OpReveal is the op of a reveal record ([Logger.RecordReveal]).
const OpReveal = "reveal"

// RevealField is one field of a reveal record: the values that one response.decrypt selector
// selected, the action they got and the rule that chose it. It never holds a value.
type RevealField struct {
	Field  string `json:"field"`  // the selector, as configured ($.cards[*].number)
	Rule   string `json:"rule"`   // the rule's name, or "default"
	Action string `json:"action"` // full, mask:last4, redact, token, ciphertext, ...
	N      int    `json:"n"`      // how many values of the response
}

// RecordReveal writes the reveal record of one response body of policy, whose policy sets
// response.reveal.audit: the caller as [Logger.Record] writes it (for ext_proc: Envoy's
// address and the request id), then policy, key_id (the tenant) and fields, one entry per
// selector and action. Selectors, not each value's path: the record's size is bounded by the
// configuration, whatever the response holds.
func (a *Logger) RecordReveal(ctx context.Context, policy, keyID string, fields []RevealField) {
	who := a.who(ctx)
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("api", orUnknown(who.API)), slog.String("op", OpReveal), slog.String("policy", policy))
	if validID(keyID) {
		attrs = append(attrs, slog.String("key_id", keyID))
	}
	attrs = append(attrs, slog.Any("fields", fields), slog.String("result", ResultOK), slog.String("remote", who.Remote))
	attrs = whoAttrs(attrs, who)
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}
