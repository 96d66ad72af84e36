package audit

import (
	"context"
	"log/slog"
)

// MaxBatchKeyIDs bounds the key ids a batch record names: the first ones, by first appearance.
const MaxBatchKeyIDs = 16

// Batch summarises a call over many items (a rewrap) for its one audit record: how many items,
// which key ids (bounded), and how each item ended. It never holds ciphertexts or values.
type Batch struct {
	// Items is the number of items in the call.
	Items int
	// KeyIDs are the call's distinct valid key ids, the first MaxBatchKeyIDs by first
	// appearance ([BatchIDs] builds them).
	KeyIDs []string
	// KeyIDCount is the number of distinct valid key ids in the call.
	KeyIDCount int
	// Rewrapped, Unchanged and Failed count the items by outcome.
	Rewrapped, Unchanged, Failed int
}

// BatchIDs collects a batch's distinct key ids in order of first appearance, keeping the first
// MaxBatchKeyIDs of them and counting all. Add only ids that passed validation.
type BatchIDs struct {
	seen  map[string]bool
	first []string
}

// Add notes id.
func (b *BatchIDs) Add(id string) {
	if b.seen[id] {
		return
	}
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	b.seen[id] = true
	if len(b.first) < MaxBatchKeyIDs {
		b.first = append(b.first, id)
	}
}

// Fill sets KeyIDs and KeyIDCount of batch.
func (b *BatchIDs) Fill(batch *Batch) {
	batch.KeyIDs, batch.KeyIDCount = b.first, len(b.seen)
}

// RecordBatch writes the one audit record of a batch call op (OpRewrap): the caller as
// [Logger.Record] writes it, then items, key_ids (at most MaxBatchKeyIDs, invalid ids
// dropped), key_id_count, rewrapped, unchanged, failed, and the result of the call as a whole
// (err: the call was refused before any item ran; per-item failures only count in failed).
func (a *Logger) RecordBatch(ctx context.Context, op string, b Batch, err error) {
	who := a.who(ctx)
	ids := make([]string, 0, min(len(b.KeyIDs), MaxBatchKeyIDs))
	for _, id := range b.KeyIDs {
		if len(ids) < MaxBatchKeyIDs && validID(id) {
			ids = append(ids, id)
		}
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("api", orUnknown(who.API)), slog.String("op", op),
		slog.Int("items", b.Items), slog.Any("key_ids", ids), slog.Int("key_id_count", b.KeyIDCount),
		slog.Int("rewrapped", b.Rewrapped), slog.Int("unchanged", b.Unchanged), slog.Int("failed", b.Failed))
	attrs = append(attrs, slog.String("result", Result(err)), slog.String("remote", who.Remote))
	attrs = whoAttrs(attrs, who)
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit", attrs...)
}
