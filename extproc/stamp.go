package extproc

import (
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rkms/rkms/extproc/policy"
)

// StampNamespace is the Envoy dynamic metadata namespace of the stamp rkms puts on every request
// it has processed: {"processed": true, "policy": NAME} ("" when no policy applies), sent with
// the answer to the last request message rkms handles (the request body when one is read, else
// the request headers). Envoy accepts it with the ext_proc filter's
// metadata_options.receiving_namespaces.untyped: [rkms]; a filter after ext_proc (the RBAC
// filter of the shipped configs) refuses requests without it, so that a request that skipped
// rkms (failure_mode_allow: true while rkms is down, a route with ext_proc disabled) never
// reaches the application. A client cannot set dynamic metadata, so it cannot forge the stamp.
const StampNamespace = "rkms"

// stamps holds the stamp of each policy, built once: answers share them (they are only read,
// while the answer is encoded).
type stamps struct {
	none     *structpb.Struct
	byPolicy map[*policy.Policy]*structpb.Struct
}

func newStamps(ps []*policy.Policy) stamps {
	s := stamps{none: Stamp(""), byPolicy: make(map[*policy.Policy]*structpb.Struct, len(ps))}
	for _, p := range ps {
		s.byPolicy[p] = Stamp(p.Name())
	}
	return s
}

// Stamp returns the dynamic metadata of a request processed under policyName ("" for none):
// the one definition of the stamp's shape, for servers that stand in for rkms (the load tool's
// no-op baseline). Do not modify the result: answers share it.
func Stamp(policyName string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		StampNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"processed": structpb.NewBoolValue(true),
			"policy":    structpb.NewStringValue(policyName),
		}}),
	}}
}

// of returns the stamp for a request processed under p (nil: no policy applies).
func (s *stamps) of(p *policy.Policy) *structpb.Struct {
	if p == nil {
		return s.none
	}
	return s.byPolicy[p]
}
