package scheduler_test

import (
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/scheduler"
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
	back := scheduler.UnmaskConfig(scheduler.MaskConfig(stored), stored)
	if back["api_key"] != stored["api_key"] || back["headers"].(map[string]any)["X-Key"] != "short" {
		t.Errorf("a masked config sent back unchanged did not keep the stored secrets: %v", back)
	}
}
