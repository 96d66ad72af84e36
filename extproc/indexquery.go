package extproc

import (
	"context"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rkms/rkms/extproc/blindindex"
)

// indexQuery rewrites the :path of a request on a lookup route: the policy's index_query
// parameters become their blind indexes under the request's key id (policy.RewriteQuery). It
// returns the request headers' mutation: mut, plus the new :path when the query changed.
func (p *processor) indexQuery(ctx context.Context, mut *extprocv3.HeaderMutation) (*extprocv3.HeaderMutation, error) {
	if p.keyID == "" {
		return nil, newError(kindInternal, phaseRequest, "internal error", fmt.Errorf("index query before the key id is known"))
	}
	kctx := withKeyTimeout(ctx, p.s.opts.KeyTimeout)
	defer kctx.stop()
	kctx.reqID = p.requestID()
	t := &transformer{keys: p.s.keys, phase: phaseRequest, keyID: p.keyID}
	path, changed, err := p.pol.RewriteQuery(p.headers.first(":path"), func(spec *blindindex.Spec, value string) (string, error) {
		k, err := t.indexKey(kctx, spec.Name)
		if err != nil {
			return "", err
		}
		return string(k.AppendString(nil, spec, value)), nil
	})
	if err != nil {
		return nil, classify(phaseRequest, err)
	}
	if !changed {
		return mut, nil
	}
	out := &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
		Header: &corev3.HeaderValue{Key: ":path", RawValue: []byte(path)}, Append: wrapperspb.Bool(false)}}}
	if mut != nil {
		out.RemoveHeaders = mut.RemoveHeaders
	}
	p.debug("lookup query turned into blind indexes", "parameters", len(p.pol.IndexQueries()))
	return out, nil
}
