package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/rkms/rkms/internal/keyservice"
)

// rewrapClient is the rewrap core of a running rkms: POST /v1/rewrap on its admin API, with the
// token and TLS settings of --server.
type rewrapClient struct{ s *serverKeys }

var _ rewrapper = (*rewrapClient)(nil)

type rewrapWireItem struct {
	KeyID      string `json:"key_id"`
	Label      string `json:"label"`
	Context    string `json:"context,omitempty"` // standard base64
	Ciphertext string `json:"ciphertext"`
}

type rewrapWireResult struct {
	Ciphertext string `json:"ciphertext"`
	Version    uint32 `json:"version"`
	Rewrapped  bool   `json:"rewrapped"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// maxRewrapReply bounds the answer read: items * the longest ciphertext, and framing.
const maxRewrapReply = 4 << 20

// classByName maps keyservice class names (the API's error codes) back to classes.
var classByName = func() map[string]keyservice.Class {
	m := map[string]keyservice.Class{}
	for _, c := range keyservice.Classes() {
		m[c.String()] = c
	}
	return m
}()

// Rewrap posts items and returns the per-item results. A refusal of the whole call (status
// other than 200) is an error of the class the status stands for; its text names the status
// and the server's message, never a ciphertext.
func (c *rewrapClient) Rewrap(ctx context.Context, items []keyservice.RewrapItem) ([]keyservice.RewrapResult, error) {
	wire := make([]rewrapWireItem, len(items))
	for i, it := range items {
		wire[i] = rewrapWireItem{KeyID: it.KeyID, Label: it.Label, Ciphertext: it.Ciphertext}
		if len(it.Context) > 0 {
			wire[i].Context = base64.StdEncoding.EncodeToString(it.Context)
		}
	}
	body, err := json.Marshal(map[string]any{"items": wire})
	if err != nil {
		return nil, fmt.Errorf("rewrap request: %w", err)
	}
	u := *c.s.base
	u.Path += "/v1/rewrap"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("rewrap request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.s.client.Do(req)
	if err != nil {
		return nil, &keyservice.Error{Class: keyservice.Unavailable, Msg: "admin API unreachable", Err: err}
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxRewrapReply+1))
	if err != nil {
		return nil, &keyservice.Error{Class: keyservice.Unavailable, Msg: "admin API answer cut short", Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(reply, &e)
		return nil, &keyservice.Error{Class: statusClass(resp.StatusCode),
			Msg: fmt.Sprintf("admin API %s: POST /v1/rewrap: %d %s", c.s.base.Host, resp.StatusCode, e.Error)}
	}
	if len(reply) > maxRewrapReply {
		return nil, &keyservice.Error{Class: keyservice.Internal, Msg: "admin API answer to POST /v1/rewrap is too large"}
	}
	var r struct {
		Items []rewrapWireResult `json:"items"`
	}
	if err := json.Unmarshal(reply, &r); err != nil || len(r.Items) != len(items) {
		return nil, &keyservice.Error{Class: keyservice.Internal, Msg: fmt.Sprintf("admin API answer to POST /v1/rewrap: not %d results", len(items))}
	}
	out := make([]keyservice.RewrapResult, len(items))
	for i, w := range r.Items {
		if w.Error != nil {
			cl, ok := classByName[w.Error.Code]
			if !ok {
				cl = keyservice.Internal
			}
			out[i].Err = &keyservice.Error{Class: cl, Msg: w.Error.Message}
			continue
		}
		out[i] = keyservice.RewrapResult{Ciphertext: w.Ciphertext, Version: w.Version, Rewrapped: w.Rewrapped}
	}
	return out, nil
}

// statusClass is the class a whole-call status stands for.
func statusClass(code int) keyservice.Class {
	switch code {
	case http.StatusUnauthorized:
		return keyservice.Unauthenticated
	case http.StatusForbidden:
		return keyservice.Forbidden
	case http.StatusTooManyRequests:
		return keyservice.Throttled
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return keyservice.InvalidArgument
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusBadGateway:
		return keyservice.Unavailable
	}
	return keyservice.Internal
}
