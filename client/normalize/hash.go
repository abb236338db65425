package normalize

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Hashes of empty input. Files of zero bytes are common in seized data and
// would match across every agency without meaning anything.
const (
	md5Empty    = "d41d8cd98f00b204e9800998ecf8427e"
	sha1Empty   = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
	sha256Empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// normalizeHex returns raw as lower-case hex of exactly digits characters,
// after trimming spaces and an optional "0x" prefix. A result equal to empty
// (the hash of empty input) is kept with a warning.
func normalizeHex(raw string, digits int, empty string) (Value, error) {
	s := strings.TrimSpace(raw)
	offset := 0 // characters before the hex digits, for reporting positions
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s, offset = s[2:], 2
	}
	var problems []string
	if n := utf8.RuneCountInString(s); n != digits {
		problems = append(problems, fmt.Sprintf("expected %d hex digits, found %d characters", digits, n))
	}
	for i, r := range []rune(s) {
		if !isHex(r) {
			problems = append(problems, fmt.Sprintf("non-hex character at position %d", offset+i+1))
			break
		}
	}
	if len(problems) > 0 {
		return Value{}, errors.New(strings.Join(problems, "; "))
	}
	v := Value{Canonical: strings.ToLower(s)}
	if v.Canonical == empty {
		v.Warning = "hash of empty input; it matches every empty file"
	}
	return v, nil
}

// isHex reports whether r is an ASCII hex digit.
func isHex(r rune) bool {
	return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
}
