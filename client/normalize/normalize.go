// Package normalize turns identifiers from agency files into canonical values
// before they are blinded.
//
// Two agencies only match when they produce byte-identical values, so every
// kind has exactly one canonical spelling: phone numbers in E.164, e-mail
// addresses lower-cased with an ASCII (IDNA) domain, and hashes as lower-case
// hex of a fixed length. Values that cannot be made canonical are rejected with
// a reason; values that are kept but look doubtful carry a warning.
//
// Values have bounded lengths. A raw value longer than 4096 bytes is rejected
// before any other work, whatever its kind, and no canonical value is longer
// than MaxValueLen bytes: e-mail addresses are held to the limits of RFC 5321,
// phone numbers and hashes are shorter by construction.
//
// Identifiers are watchlist data. No error, warning or reason produced by this
// package contains the raw or canonical value: they carry line numbers,
// lengths, positions and fixed descriptions only.
package normalize

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Kind is the kind of identifier held in a list.
type Kind string

// The identifier kinds a list can hold.
const (
	Phone  Kind = "phone"  // phone number, canonical form E.164 ("+447700900123")
	Email  Kind = "email"  // e-mail address, lower-case with an ASCII domain
	PDQ    Kind = "pdq"    // PDQ perceptual image hash, 64 hex digits (256 bits)
	Image  Kind = "image"  // path of an image file, hashed with PDQ on this machine: a pdq list at the hub
	MD5    Kind = "md5"    // MD5 file hash, 32 hex digits
	SHA1   Kind = "sha1"   // SHA-1 file hash, 40 hex digits
	SHA256 Kind = "sha256" // SHA-256 file hash, 64 hex digits
)

// kinds lists every Kind in the order they are documented to users.
var kinds = []Kind{Phone, Email, PDQ, Image, MD5, SHA1, SHA256}

// ListKind is the kind of the list k's values make at the hub: an image
// is matched by its PDQ hash, so image and pdq lists match each other.
func (k Kind) ListKind() string {
	if k == Image {
		return string(PDQ)
	}
	return string(k)
}

// MaxValueLen is the length in bytes of the longest canonical value any kind
// can produce: an e-mail address at the RFC 5321 limit of 254 octets (local
// part at most 64, domain at most 253 in ASCII form). Phone numbers in E.164
// are at most 21 bytes ("+", a country code of at most 3 digits and a national
// number of at most 17) and hashes at most 64 hex digits.
//
// The OPRF input encoding (crypto/oprf.Input) relies on this bound: it writes
// the value after a 16-bit length, so a value longer than 65,535 bytes could
// not be encoded and would fail a whole list after every row had been
// accepted. Normalize and ReadCSV never return a longer value; they reject the
// row instead.
const MaxValueLen = 254

// maxRawLen is the longest raw value, in bytes, that is normalized at all.
// Every real identifier is far shorter even with generous padding, and
// rejecting longer cells first means a huge cell costs no parsing, Unicode
// normalization or IDNA work.
const maxRawLen = 4096

// rulesVersion identifies the normalization rules of this package. It is
// recorded in list metadata so that lists normalized under different rules
// can be told apart; change it whenever a canonical value could change.
const rulesVersion = "1"

// Errors returned by this package. Callers tell configuration errors from
// rejected values with errors.Is.
var (
	// ErrUnknownKind reports a kind that is not one of the supported kinds.
	ErrUnknownKind = errors.New("normalize: unknown kind")
	// ErrUnknownRegion reports an Options.Region the phone library does not know.
	ErrUnknownRegion = errors.New("normalize: unknown region")
	// ErrBadQuality reports an Options.MinQuality outside 0-100.
	ErrBadQuality = errors.New("normalize: image quality floor out of range")
	// ErrRejected reports a value that cannot be normalized; the wrapped
	// message says why without repeating the value.
	ErrRejected = errors.New("normalize: value rejected")
	// ErrColumn reports a CSV column argument that selects no single column.
	ErrColumn = errors.New("normalize: bad column")
	// ErrNoHeader reports CSV input without a header row.
	ErrNoHeader = errors.New("normalize: no header row")
)

// ParseKind parses a kind name such as "phone" or "SHA256" (case-insensitive,
// surrounding spaces ignored).
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.ToLower(strings.TrimSpace(s)))
	if !k.known() {
		return "", fmt.Errorf("%w %q: accepted kinds are %s", ErrUnknownKind, s, kindList())
	}
	return k, nil
}

// known reports whether k is one of the supported kinds, spelled exactly.
func (k Kind) known() bool {
	for _, known := range kinds {
		if k == known {
			return true
		}
	}
	return false
}

// kindList returns the accepted kinds as a comma-separated list.
func kindList() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// Options configures normalization. Its zero value accepts only phone numbers
// in international format and applies no e-mail provider rules.
type Options struct {
	// Region is the default region for phone numbers written in national
	// format, as an ISO 3166-1 alpha-2 code such as "GB" (case-insensitive).
	// Without it only numbers starting with "+" are accepted.
	Region string
	// EmailProviderRules applies the address rules of large mail providers,
	// so that addresses delivered to the same mailbox get the same value:
	// Gmail ignores dots and "+tags" (and googlemail.com is gmail.com),
	// Proton ignores dots, hyphens, underscores and "+tags", Outlook.com,
	// iCloud and Fastmail ignore "+tags". All agencies that want to match
	// each other's e-mail lists must use the same setting.
	EmailProviderRules bool
	// BaseDir is the directory image paths are relative to ("": the
	// working directory).
	BaseDir string
	// MinQuality is the lowest PDQ quality (0-100) of an accepted image;
	// 0 means DefaultMinQuality. Meta discards hashes below 50: a flat or
	// tiny image hashes to bits that match unrelated images.
	MinQuality int
}

// DefaultMinQuality is the quality floor of images unless Options says
// otherwise: Meta's recommendation.
const DefaultMinQuality = 50

// minQuality returns the quality floor o asks for.
func (o Options) minQuality() int {
	if o.MinQuality <= 0 {
		return DefaultMinQuality
	}
	return o.MinQuality
}

// region returns o.Region in the form the phone library expects.
func (o Options) region() string {
	return strings.ToUpper(strings.TrimSpace(o.Region))
}

// Metadata returns the settings that determine canonical values of the given
// kind, to be recorded with a list so that lists normalized differently can be
// spotted. Keys: "normalize_version" always; "region" ("none" when unset) for
// phone; "email_provider_rules" ("on" or "off") for email.
func (o Options) Metadata(kind Kind) map[string]string {
	m := map[string]string{"normalize_version": rulesVersion}
	switch kind {
	case Phone:
		m["region"] = "none"
		if r := o.region(); r != "" {
			m["region"] = r
		}
	case Email:
		m["email_provider_rules"] = "off"
		if o.EmailProviderRules {
			m["email_provider_rules"] = "on"
		}
	case Image:
		m["pdq_min_quality"] = strconv.Itoa(o.minQuality())
	}
	return m
}

// Value is a normalized identifier.
type Value struct {
	// Canonical is the value to blind.
	Canonical string
	// Warning, if not empty, says why the value was kept but may not match
	// (for example a phone number outside any assigned range). It never
	// contains the value.
	Warning string
	// Label is what the agency knows the value by when it is not the value
	// itself: an image's path.
	Label string
}

// Normalize returns the canonical form of one raw identifier of the given kind.
// A value that cannot be normalized, including a raw value over 4096 bytes,
// gives an error wrapping ErrRejected whose message says why and never
// contains the value (an image's reason names its path, the agency's own
// file); invalid options give an error wrapping ErrUnknownKind,
// ErrUnknownRegion or ErrBadQuality. An accepted value is never longer
// than MaxValueLen bytes.
func Normalize(kind Kind, raw string, opts Options) (Value, error) {
	n, err := newNormalizer(kind, opts)
	if err != nil {
		return Value{}, err
	}
	v, err := n.normalize(raw)
	if err != nil {
		return Value{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return v, nil
}

// normalizer holds validated options for one kind.
type normalizer struct {
	kind   Kind
	region string // upper-case, known to the phone library, or empty
	rules  bool   // e-mail provider rules
	// baseDir and minQuality are Options.BaseDir and its quality floor.
	baseDir    string
	minQuality int
}

// newNormalizer validates kind and the options that apply to it.
func newNormalizer(kind Kind, opts Options) (*normalizer, error) {
	if !kind.known() {
		return nil, fmt.Errorf("%w %q: accepted kinds are %s", ErrUnknownKind, kind, kindList())
	}
	n := &normalizer{kind: kind, rules: opts.EmailProviderRules, baseDir: opts.BaseDir, minQuality: opts.minQuality()}
	if opts.MinQuality < 0 || opts.MinQuality > 100 {
		return nil, fmt.Errorf("%w: %d is not in 0-100", ErrBadQuality, opts.MinQuality)
	}
	if kind == Phone {
		n.region = opts.region()
		if n.region != "" && !phonenumbers.GetSupportedRegions()[n.region] {
			return nil, fmt.Errorf("%w %q: use an ISO 3166-1 alpha-2 code such as GB", ErrUnknownRegion, opts.Region)
		}
	}
	return n, nil
}

// normalize returns the canonical form of raw, or an error whose message is
// the reason for rejecting it.
func (n *normalizer) normalize(raw string) (Value, error) {
	if len(raw) > maxRawLen {
		return Value{}, fmt.Errorf("value is %d bytes, more than %d", len(raw), maxRawLen)
	}
	if !utf8.ValidString(raw) {
		return Value{}, errors.New("not valid UTF-8 (is the file saved in another encoding?)")
	}
	if strings.TrimSpace(raw) == "" {
		return Value{}, errors.New("empty value")
	}
	var v Value
	var err error
	switch n.kind {
	case Phone:
		v, err = normalizePhone(raw, n.region)
	case Email:
		v, err = normalizeEmail(raw, n.rules)
	case PDQ:
		v, err = normalizeHex(raw, 64, "")
	case Image:
		v, err = n.hashImage(raw)
	case MD5:
		v, err = normalizeHex(raw, 32, md5Empty)
	case SHA1:
		v, err = normalizeHex(raw, 40, sha1Empty)
	default: // SHA256; newNormalizer admits no other kind
		v, err = normalizeHex(raw, 64, sha256Empty)
	}
	if err != nil {
		return Value{}, err
	}
	// Every kind bounds its values more tightly (see MaxValueLen); this
	// keeps the promise to the OPRF encoding if a kind ever does not.
	if len(v.Canonical) > MaxValueLen {
		return Value{}, fmt.Errorf("normalized value is %d bytes, more than %d", len(v.Canonical), MaxValueLen)
	}
	return v, nil
}
