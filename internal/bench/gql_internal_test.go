package bench

import "testing"

// The bench reads task numbers out of GraphQL's opaque ids.
func TestGQLIDReadsTheTaskNumber(t *testing.T) {
	if n, err := gqlID("VGFzazoxMg=="); err != nil || n != 12 { // Task:12
		t.Fatalf("gqlID(Task:12) = %d, %v", n, err)
	}
	for _, bad := range []string{"12", "TW9kZWw6MTI="} { // a bare number, Model:12
		if n, err := gqlID(bad); err == nil {
			t.Fatalf("gqlID(%q) = %d, want an error", bad, n)
		}
	}
}
