package scheduler_test

import (
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// TestMaskShowsAtMostFourCharacters: a masked secret never shows more than
// four of its characters, and none of a key shorter than 16.
func TestMaskShowsAtMostFourCharacters(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{"", "****"},
		{"abcdefghi", "****"},
		{"abcdefghijklmno", "****"},
		{"sk-abcdefghijklm", "...jklm"},
		{"sk-proj-0123456789abcdefXYZW", "...XYZW"},
	} {
		got := scheduler.Mask(tt.key)
		if got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.key, got, tt.want)
		}
		shown := 0
		for _, r := range strings.Trim(got, ".*") {
			if strings.ContainsRune(tt.key, r) {
				shown++
			}
		}
		if shown > 4 {
			t.Errorf("Mask(%q) = %q shows %d characters of the key", tt.key, got, shown)
		}
	}
	stored := map[string]any{"api_key": "sk-proj-0123456789abcdefXYZW", "headers": map[string]any{"X-Key": "short"}}
	back, err := scheduler.UnmaskConfig(scheduler.MaskConfig(stored), stored)
	if err != nil || back["api_key"] != stored["api_key"] || back["headers"].(map[string]any)["X-Key"] != "short" {
		t.Errorf("a masked config sent back unchanged did not keep the stored secrets: %v %v", back, err)
	}
}

// A stored secret never follows a changed destination: an update that
// moves base_url, url, host or port and sends a secret back masked is
// refused naming the secret; re-entering it is accepted.
func TestMaskedSecretDoesNotFollowANewDestination(t *testing.T) {
	stored := map[string]any{"api_key": "sk-proj-0123456789abcdefXYZW", "base_url": "https://api.openai.com/v1", "model": "m",
		"headers": map[string]any{"X-Gateway-Key": "gw-0123456789abcdef"}}
	for _, tc := range []struct {
		desc  string
		in    map[string]any
		field string
	}{
		{"new base_url, masked key", map[string]any{"api_key": scheduler.Mask("sk-proj-0123456789abcdefXYZW"), "base_url": "https://evil.example/v1", "model": "m"}, "config.api_key"},
		{"new url, masked header", map[string]any{"url": "https://evil.example/", "headers": map[string]any{"X-Gateway-Key": scheduler.Mask("gw-0123456789abcdef")}}, "config.headers.X-Gateway-Key"},
		{"new host", map[string]any{"api_key": scheduler.Mask("sk-proj-0123456789abcdefXYZW"), "host": "evil.example", "base_url": "https://api.openai.com/v1"}, "config.api_key"},
	} {
		_, err := scheduler.UnmaskConfig(tc.in, stored)
		if err == nil || scheduler.CodeOf(err) != scheduler.CodeInvalid || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "never sent to a new destination") {
			t.Errorf("%s: %v, want BAD_USER_INPUT naming %s", tc.desc, err, tc.field)
		}
	}
	out, err := scheduler.UnmaskConfig(map[string]any{"api_key": "sk-new-key-for-the-new-host-0000", "base_url": "https://other.example/v1", "model": "m"}, stored)
	if err != nil || out["api_key"] != "sk-new-key-for-the-new-host-0000" {
		t.Fatalf("re-entered secret with a new base_url: %v %v", out, err)
	}
	if _, err := scheduler.UnmaskConfig(scheduler.MaskConfig(stored), stored); err != nil {
		t.Fatalf("unchanged destination refused: %v", err)
	}
}
