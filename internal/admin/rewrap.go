package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"

	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
)

// rewrapPath is the one endpoint that reads a body: up to keyservice.MaxRewrapRequestBytes.
const rewrapPath = "/v1/rewrap"

// maxRewrapDepth bounds the nesting of a rewrap request body: the request needs 3 levels
// ({"items":[{...}]}), anything deeper is refused before it is decoded.
const maxRewrapDepth = 3

// rewrapRequest is the body of POST /v1/rewrap.
type rewrapRequest struct {
	Items *[]rewrapItem `json:"items"`
}

type rewrapItem struct {
	KeyID      string `json:"key_id"`
	Label      string `json:"label"`
	Context    string `json:"context"` // standard base64, optional
	Ciphertext string `json:"ciphertext"`
}

// Members a request may have, exactly as spelled here: at the top level and in each item.
var (
	rewrapTopMembers  = []string{"items"}
	rewrapItemMembers = []string{"key_id", "label", "context", "ciphertext"}
)

type rewrapResponse struct {
	Items []rewrapItemResult `json:"items"`
}

type rewrapItemResult struct {
	Ciphertext string           `json:"ciphertext,omitempty"`
	Version    uint32           `json:"version,omitempty"`
	Rewrapped  *bool            `json:"rewrapped,omitempty"`
	Error      *rewrapItemError `json:"error,omitempty"`
}

type rewrapItemError struct {
	Code    string `json:"code"`    // a keyservice class name: not_found, forbidden, ...
	Message string `json:"message"` // its fixed message
}

// errRewrapBody is what a request body that decodeRewrap refuses wraps.
var errRewrapBody = errors.New("invalid rewrap request")

// decodeRewrap reads a POST /v1/rewrap body strictly: one JSON object, nothing after it, no
// duplicate members, no member but those of the request (exact spelling: encoding/json alone
// would match "ITEMS" to items), at most maxRewrapDepth levels, items present (not null), and
// each context standard base64 with padding. Errors wrap errRewrapBody, and their messages
// carry no value from the body beyond a member name (at most 64 bytes of it).
func decodeRewrap(body []byte) ([]keyservice.RewrapItem, error) {
	n, err := checkMembers(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errRewrapBody, err)
	}
	if n > keyservice.MaxRewrapItems {
		return nil, &tooManyItems{n}
	}
	var req rewrapRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("%w: %s has the wrong JSON type", errRewrapBody, te.Field)
		}
		return nil, fmt.Errorf("%w: the body is not JSON", errRewrapBody)
	}
	if req.Items == nil {
		return nil, fmt.Errorf("%w: items is required (an array)", errRewrapBody)
	}
	items := make([]keyservice.RewrapItem, len(*req.Items))
	for i, it := range *req.Items {
		items[i] = keyservice.RewrapItem{KeyID: it.KeyID, Label: it.Label, Ciphertext: it.Ciphertext}
		if it.Context == "" {
			continue
		}
		ctx, err := base64.StdEncoding.Strict().DecodeString(it.Context)
		if err != nil {
			return nil, fmt.Errorf("%w: items[%d].context is not standard base64", errRewrapBody, i)
		}
		items[i].Context = ctx
	}
	return items, nil
}

// tooManyItems is a request of more than keyservice.MaxRewrapItems items, found before they
// are decoded.
type tooManyItems struct{ n int }

func (e *tooManyItems) Error() string {
	return fmt.Sprintf("rewrap request of %d items, at most %d", e.n, keyservice.MaxRewrapItems)
}

// checkMembers walks body's tokens: one value, at most maxRewrapDepth deep, objects without a
// duplicate member and with only the members of their level (the request at depth 1, an item
// at depth 3). It returns the number of values in the top object's arrays (the items).
func checkMembers(body []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		obj     bool
		wantKey bool
		seen    []string
	}
	var stack []frame
	done, items := false, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			switch {
			case len(stack) > 0:
				return 0, errors.New("the body is not JSON (it ends early)")
			case !done:
				return 0, errors.New("the body is not a JSON object")
			}
			return items, nil
		}
		if err != nil {
			return 0, fmt.Errorf("the body is not JSON (near byte %d)", dec.InputOffset())
		}
		if done {
			return 0, errors.New("data after the JSON object")
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if s, ok := tok.(string); ok && top != nil && top.obj && top.wantKey {
			if err := member(len(stack), top.seen, s); err != nil {
				return 0, err
			}
			top.seen, top.wantKey = append(top.seen, s), false
			continue
		}
		if top != nil && top.obj {
			top.wantKey = true // this token starts the member's value: a key comes next
		}
		closing := tok == json.Delim('}') || tok == json.Delim(']')
		if len(stack) == 2 && !top.obj && !closing {
			items++ // a value in the request's array
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxRewrapDepth {
				return 0, fmt.Errorf("the body is nested deeper than %d levels", maxRewrapDepth)
			}
			stack = append(stack, frame{obj: tok == json.Delim('{'), wantKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		done = len(stack) == 0
	}
}

// member checks the member name s of an object at depth against the members of that level and
// those seen already.
func member(depth int, seen []string, s string) error {
	var allowed []string
	switch depth {
	case 1:
		allowed = rewrapTopMembers
	case 3:
		allowed = rewrapItemMembers
	}
	if !slices.Contains(allowed, s) {
		return fmt.Errorf("unknown member %.64q", s)
	}
	if slices.Contains(seen, s) {
		return fmt.Errorf("member %q given more than once", s)
	}
	return nil
}

// rewrap: POST /v1/rewrap with {"items":[{"key_id","label","context","ciphertext"}]}: 200 with
// one result per item, in order: {"ciphertext","version","rewrapped"} or {"error":{"code",
// "message"}}. The whole call fails (the usual error shape) for a wrong content type (415), a
// body over keyservice.MaxRewrapRequestBytes (413), a body decodeRewrap refuses or more than
// keyservice.MaxRewrapItems items (400); each is audited.
func (h *Handler) rewrap(w http.ResponseWriter, r *http.Request, sess *keyservice.Session, _ query) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		_ = sess.Malformed(r.Context(), audit.OpRewrap, "unsupported content type",
			fmt.Errorf("rewrap content type: %w", keyring.ErrInvalidID))
		writeError(w, http.StatusUnsupportedMediaType, "unsupported content type: send application/json")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			_ = sess.Malformed(r.Context(), audit.OpRewrap, "request body too large",
				fmt.Errorf("rewrap body over %d bytes: %w", tooLarge.Limit, keyring.ErrInvalidID))
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		fail(w, sess.Malformed(r.Context(), audit.OpRewrap, "request body unreadable", fmt.Errorf("rewrap body: %w: %w", err, keyring.ErrInvalidID)))
		return
	}
	items, err := decodeRewrap(body)
	if tm := (*tooManyItems)(nil); errors.As(err, &tm) {
		fail(w, sess.CheckRewrapCount(r.Context(), tm.n))
		return
	}
	if err != nil {
		fail(w, sess.Malformed(r.Context(), audit.OpRewrap, err.Error(), fmt.Errorf("%w: %w", err, keyring.ErrInvalidID)))
		return
	}
	res, err := sess.Rewrap(r.Context(), items)
	if err != nil {
		fail(w, err)
		return
	}
	resp := rewrapResponse{Items: make([]rewrapItemResult, len(res))}
	for i, rr := range res {
		if rr.Err != nil {
			resp.Items[i].Error = &rewrapItemError{Code: rr.Err.Class.String(), Message: rr.Err.Msg}
			continue
		}
		resp.Items[i] = rewrapItemResult{Ciphertext: rr.Ciphertext, Version: rr.Version, Rewrapped: &rr.Rewrapped}
	}
	writeJSON(w, http.StatusOK, resp)
}
