package dirlock

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"abcde", 5, "abcde"},
		{"abcdef", 5, "abcde..."},
		{"abcdé", 5, "abcd..."}, // é is two bytes: not split
		{"ab€", 4, "ab..."},     // € is three bytes
	} {
		if got := truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestCommandTruncated(t *testing.T) {
	h := newHolder()
	if len(h.Command) > maxCommand+len("...") || !utf8.ValidString(h.Command) {
		t.Errorf("command %q: %d bytes, want at most %d", h.Command, len(h.Command), maxCommand+3)
	}
	long := strings.Repeat("é", 300)
	if got := truncate(long, maxCommand); len(got) > maxCommand+3 || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("truncate of a 600-byte command = %q (%d bytes)", got, len(got))
	}
}
