package jsonfield

// Covers reports whether s selects every value that t selects, in every document: whether every
// path that t matches, s matches too. With fold, member names compare as under
// [Options.FoldCase]. The outermost-selection rule is ignored: Covers compares the values each
// selector reaches, not which of them a plan passes to its transform.
//
// Covers never reports true wrongly, and it reports false wrongly only when it gives up. It
// decides exactly, by exploring the two selectors as automata over the member names and indexes
// they mention (plus one name and one index that neither mentions, standing for all others), but
// gives up and reports false when that takes more than 65536 states. The states are at most
// (steps of t + 1) × 2^(steps of s + 1), and (steps of t + 1) × (steps of s + 2) when s has no
// descent step (..name), so that never happens when s has at most 10 steps and t at most 30, nor
// when s has no descent step. It also gives up on selectors of more than 63 steps, unless they
// are equal.
//
// Containment is about selected values, not what lies inside them: $.a does not cover $.a.b,
// though a plan that selects $.a transforms $.a.b with it.
func (s *Selector) Covers(t *Selector, fold bool) bool {
	if s.Equal(t) {
		return true
	}
	if len(s.steps) >= 64 || len(t.steps) >= 64 {
		return false
	}
	c := newCoverage(s.steps, t.steps, fold)
	return c.covers()
}

// maxCoverStates bounds the states Covers explores.
const maxCoverStates = 1 << 16

// coverage decides whether the path language of s contains that of t. A selector is a
// nondeterministic automaton whose state j means "j steps matched": a member, index or wildcard
// step moves from j to j+1 on a matching path step, and a descent step ..name stays at j on any
// path step and moves to j+1 on a member called name. Paths are words over an infinite alphabet
// (all member names and indexes), but the two automata only tell apart the names and indexes
// they mention, so one extra name and one extra index stand for all the others.
type coverage struct {
	s, t    []coverStep
	symbols []coverSymbol
}

// coverStep is a step with its member name in comparable form (folded under fold).
type coverStep struct {
	kind  stepKind
	name  string
	index int
}

// coverSymbol is a class of path steps: one member name or index, or (other) every name or
// every index that no step mentions.
type coverSymbol struct {
	member bool
	other  bool
	name   string
	index  int
}

func newCoverage(s, t []step, fold bool) *coverage {
	c := &coverage{s: coverSteps(s, fold), t: coverSteps(t, fold)}
	c.symbols = []coverSymbol{{member: true, other: true}, {other: true}}
	seenName, seenIndex := map[string]bool{}, map[int]bool{}
	for _, st := range append(c.s[:len(c.s):len(c.s)], c.t...) {
		switch {
		case st.kind == stepIndex && !seenIndex[st.index]:
			seenIndex[st.index] = true
			c.symbols = append(c.symbols, coverSymbol{index: st.index})
		case (st.kind == stepMember || st.kind == stepDescendant) && !seenName[st.name]:
			seenName[st.name] = true
			c.symbols = append(c.symbols, coverSymbol{member: true, name: st.name})
		}
	}
	return c
}

func coverSteps(steps []step, fold bool) []coverStep {
	out := make([]coverStep, len(steps))
	for i, st := range steps {
		out[i] = coverStep{kind: st.kind, name: st.name, index: st.index}
		if fold && (st.kind == stepMember || st.kind == stepDescendant) {
			out[i].name = string(Fold(nil, []byte(st.name)))
		}
	}
	return out
}

// matches reports whether the path step a satisfies the member or index of st (a member step,
// index step, or the name of a descent).
func (st coverStep) matches(a coverSymbol) bool {
	switch st.kind {
	case stepWildcard:
		return true
	case stepIndex:
		return !a.member && !a.other && a.index == st.index
	default:
		return a.member && !a.other && a.name == st.name
	}
}

// next returns the states reached from the set of states set of steps on a path step a.
func next(steps []coverStep, set uint64, a coverSymbol) uint64 {
	var out uint64
	for j, st := range steps {
		if set&(1<<j) == 0 {
			continue
		}
		if st.kind == stepDescendant {
			out |= 1 << j
		}
		if st.matches(a) {
			out |= 1 << (j + 1)
		}
	}
	return out
}

// covers explores the pairs (state of t, set of states of s) that a path can reach: t is
// followed one state at a time, s by its set of states (a subset construction). A path that
// takes t to its end and s to a set without its end is a path that t matches and s does not.
// Every state of t can reach the end of t, so a pair with an empty set of s is one too.
func (c *coverage) covers() bool {
	type pair struct {
		t int
		s uint64
	}
	tEnd, sEnd := len(c.t), uint64(1)<<len(c.s)
	seen := map[pair]bool{}
	todo := []pair{{0, 1}}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if p.s == 0 || (p.t == tEnd && p.s&sEnd == 0) {
			return false
		}
		if seen[p] {
			continue
		}
		if seen[p] = true; len(seen) > maxCoverStates {
			return false
		}
		if p.t == tEnd {
			continue
		}
		st := c.t[p.t]
		for _, a := range c.symbols {
			match := st.matches(a)
			if !match && st.kind != stepDescendant {
				continue
			}
			ns := next(c.s, p.s, a)
			if st.kind == stepDescendant {
				todo = append(todo, pair{p.t, ns})
			}
			if match {
				todo = append(todo, pair{p.t + 1, ns})
			}
		}
	}
	return true
}
