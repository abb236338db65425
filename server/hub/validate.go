package hub

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/policy"
)

// Limits on what a request may carry into the store and the decision log.
// The proto documents them; a longer value is refused with
// INVALID_ARGUMENT, never truncated.
const (
	// MaxCheckTokens bounds one check request.
	MaxCheckTokens = 100_000
	// MaxBatchEntries bounds one publish batch.
	MaxBatchEntries = 16384
	// maxCaseRefLen, maxPurposeLen and maxReasonLen bound the free text of
	// queries and disclosure requests, in bytes.
	maxCaseRefLen = 128
	maxPurposeLen = 64
	maxReasonLen  = 2000
	// maxNormalization bounds the entries of a list's normalization
	// settings, and maxNormKey and maxNormValue their sizes.
	maxNormalization = 16
	maxNormKey       = 64
	maxNormValue     = 256
	// maxConsentRoles bounds a list's victim consent roles.
	maxConsentRoles = 16
)

var (
	agencyRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	listNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	uploadIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// resolveList turns a list reference into the caller's own list name. A
// reference is a list name, or owner/name; naming another owner's list is
// refused: agencies may only read, query and delete their own lists.
func resolveList(caller mtls.Identity, field, ref string) (string, error) {
	name := ref
	if owner, n, ok := strings.Cut(ref, "/"); ok {
		if owner != caller.ID {
			return "", status.Errorf(codes.PermissionDenied, "%s: list %q belongs to %s; agencies may only use their own lists", field, ref, owner)
		}
		name = n
	}
	if !listNameRE.MatchString(name) {
		return "", invalid("%s: %q is not a list name (1-128 letters, digits, '.', '_' or '-')", field, clip(ref))
	}
	return name, nil
}

// clip shortens an untrusted value for an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}

// checkWord refuses a word outside the policy's closed vocabulary, listing
// the valid ones.
func checkWord(field, what, w string, words []string) error {
	if !slices.Contains(words, w) {
		return invalid("%s: %q is not a known %s; use one of: %s", field, clip(w), what, strings.Join(words, ", "))
	}
	return nil
}

func checkKind(v policy.Vocabulary, field, kind string) error {
	return checkWord(field, "identifier kind", kind, v.Kinds)
}

func checkCategory(v policy.Vocabulary, field, c string) error {
	return checkWord(field, "list category", c, v.Categories)
}

func checkRoles(v policy.Vocabulary, field string, roles []string) error {
	if len(roles) > maxConsentRoles {
		return invalid("%s: %d roles, more than %d", field, len(roles), maxConsentRoles)
	}
	for i, r := range roles {
		if err := checkWord(fmt.Sprintf("%s[%d]", field, i), "role", r, v.Roles); err != nil {
			return err
		}
	}
	return nil
}

// checkPurpose refuses a purpose no role may state, listing those the
// caller's role may. A known purpose that the role may not state is the
// policy's to refuse (PERMISSION_DENIED), and an empty one too.
func checkPurpose(v policy.Vocabulary, role, purpose string) error {
	switch {
	case len(purpose) > maxPurposeLen:
		return invalid("purpose: %d bytes, more than %d", len(purpose), maxPurposeLen)
	case purpose != "" && !v.KnownPurpose(purpose):
		return invalid("purpose: %q is not a known purpose; role %s may state: %s", clip(purpose), role, strings.Join(v.Purposes(role), ", "))
	}
	return nil
}

func checkKeyID(field, id string) error {
	if !oprf.ValidKeyID(id) {
		return invalid("%s: %q is not a key id", field, clip(id))
	}
	return nil
}

func checkUploadID(field, id string) error {
	if !uploadIDRE.MatchString(id) {
		return invalid("%s: upload id must be 8-64 letters, digits, '_' or '-'", field)
	}
	return nil
}

// invisible reports the runes trimmed from free text: white space and
// format characters such as zero-width spaces and byte order marks.
func invisible(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) }

// text trims free text of invisible runes at both ends and checks it: at
// most limit bytes, no control characters (line breaks and tabs only if
// multiline), and, if required, at least one visible character. It returns
// the trimmed text, which is what the hub stores and logs.
func text(field, s string, limit int, required, multiline bool) (string, error) {
	if len(s) > limit {
		return "", invalid("%s: %d bytes, more than %d", field, len(s), limit)
	}
	s = strings.TrimFunc(s, invisible)
	for i, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return "", invalid("%s: control character %U at byte %d", field, r, i)
		}
	}
	if required && s == "" {
		return "", invalid("%s: required: say why", field)
	}
	return s, nil
}

// query checks and trims the purpose and case reference a requester states.
func query(v policy.Vocabulary, a policy.Agency, purpose, caseRef string) (string, string, error) {
	purpose = strings.TrimFunc(purpose, invisible)
	if err := checkPurpose(v, a.Role, purpose); err != nil {
		return "", "", err
	}
	caseRef, err := text("case_ref", caseRef, maxCaseRefLen, false, false)
	return purpose, caseRef, err
}
