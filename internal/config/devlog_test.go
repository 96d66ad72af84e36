package config

import "testing"

// TestDevLogsText is defect 11 of issue 15: the dev server (no file) logs text for a human; a
// configuration file gets JSON unless it sets log.format.
func TestDevLogsText(t *testing.T) {
	if f := Dev().Log.Format; f != "text" {
		t.Errorf("Dev: log.format %q, want text", f)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"", "json"},
		{"log: {format: text}\n", "text"},
		{"log: {level: debug}\n", "json"},
	} {
		cfg, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Log.Format != tc.want {
			t.Errorf("%q: log.format %q, want %q", tc.yaml, cfg.Log.Format, tc.want)
		}
	}
	if ps := Check(Dev(), nil); len(ps) > 0 {
		t.Fatalf("Dev invalid: %v", ps)
	}
}
