package normalize

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

func TestParseKind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Kind
	}{
		{"phone", Phone},
		{" Email ", Email},
		{"PDQ", PDQ},
		{"md5", MD5},
		{"sha1", SHA1},
		{"SHA256", SHA256},
	} {
		got, err := ParseKind(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "sha512", "phones", "e-mail"} {
		_, err := ParseKind(in)
		if !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) error = %v; want ErrUnknownKind", in, err)
			continue
		}
		for _, k := range identifierKinds {
			if !strings.Contains(err.Error(), string(k)) {
				t.Errorf("ParseKind(%q) error %q does not list kind %q", in, err, k)
			}
		}
	}
}

// normalizeCase is one Normalize call and what it must give: the canonical
// value and a substring of the warning, or a substring of the error.
type normalizeCase struct {
	name    string
	raw     string
	opts    Options
	want    string
	warning string // substring of Value.Warning; "" means no warning
	err     string // substring of the error; "" means no error
}

func runNormalizeCases(t *testing.T, kind Kind, cases []normalizeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Normalize(kind, tc.raw, tc.opts)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Normalize = %+v, nil; want error containing %q", v, tc.err)
				}
				if !errors.Is(err, ErrRejected) {
					t.Errorf("error %q does not wrap ErrRejected", err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %q does not contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize error = %v; want %q", err, tc.want)
			}
			if v.Canonical != tc.want {
				t.Errorf("Canonical = %q; want %q", v.Canonical, tc.want)
			}
			switch {
			case tc.warning == "" && v.Warning != "":
				t.Errorf("Warning = %q; want none", v.Warning)
			case !strings.Contains(v.Warning, tc.warning):
				t.Errorf("Warning = %q; want it to contain %q", v.Warning, tc.warning)
			}
		})
	}
}

func TestNormalizePhone(t *testing.T) {
	gb := Options{Region: "GB"}
	us := Options{Region: "US"}
	th := Options{Region: "TH"}
	const invalid = "not a valid number"
	runNormalizeCases(t, Phone, []normalizeCase{
		// A GB unit and a US unit holding the same number must agree. The
		// 07700 900xxx range is reserved for drama, hence the warning.
		{name: "GB national, region GB", raw: "07700 900123", opts: gb, want: "+447700900123", warning: invalid},
		{name: "GB international, region US", raw: "+44 7700 900123", opts: us, want: "+447700900123", warning: invalid},
		{name: "GB international with (0)", raw: "+44 (0) 7700 900123", opts: us, want: "+447700900123", warning: invalid},
		{name: "GB with 00 prefix, region GB", raw: "0044 7700 900123", opts: gb, want: "+447700900123", warning: invalid},
		{name: "GB with 011 prefix, region US", raw: "011 44 7700 900123", opts: us, want: "+447700900123", warning: invalid},
		{name: "GB without region", raw: "+447700900123", want: "+447700900123", warning: invalid},
		{name: "GB region lower-case", raw: "07700-900-123", opts: Options{Region: " gb "}, want: "+447700900123", warning: invalid},
		{name: "GB landline with junk", raw: "  (020) 7946.0000 ", opts: gb, want: "+442079460000"},
		{name: "GB NBSP and en dashes", raw: "+44\u00a020\u20137946\u20130000", want: "+442079460000"},
		{name: "US national, region US", raw: "(202) 555-0123", opts: us, want: "+12025550123"},
		{name: "US dots, region US", raw: "202.555.0123", opts: us, want: "+12025550123"},
		{name: "US with trunk 1, region US", raw: "1-202-555-0123", opts: us, want: "+12025550123"},
		{name: "+1 without region", raw: "+1 202-555-0123", want: "+12025550123"},
		{name: "+1 with region GB", raw: "+1 (415) 555 2671", opts: gb, want: "+14155552671"},
		{name: "tel URI", raw: "tel:+1-202-555-0123", want: "+12025550123"},
		{name: "TEL prefix upper-case", raw: "TEL: +1 202 555 0123", want: "+12025550123"},
		{name: "Thai national, region TH", raw: "081 234 5678", opts: th, want: "+66812345678"},
		{name: "Thai international, region GB", raw: "+66 81 234 5678", opts: gb, want: "+66812345678"},
		{name: "Thai international with (0)", raw: "+66 (0)81-234-5678", want: "+66812345678"},
		{name: "extension dropped", raw: "+1 202 555 0123 ext. 45", want: "+12025550123", warning: "extension dropped"},
		{name: "possible but invalid", raw: "+1 200 555 0123", want: "+12005550123", warning: invalid},
		{name: "possible but invalid GB", raw: "+44 1234 567", want: "+441234567", warning: invalid},

		{name: "national without region", raw: "07700 900123", err: "pass --region"},
		{name: "00 prefix without region", raw: "0044 7700 900123", err: "pass --region"},
		{name: "too short", raw: "+44 12", err: "too short"},
		{name: "too long for country", raw: "+44 7700 900123 123", err: "too long"},
		{name: "way too long", raw: "+44 " + strings.Repeat("1", 30), opts: gb, err: "too long"},
		{name: "unknown country code", raw: "+999 1234567", err: "unknown country calling code"},
		{name: "local number only", raw: "555 0123", opts: us, err: "local number"},
		{name: "letters", raw: "unknown", opts: gb, err: "not a phone number"},
		{name: "punctuation only", raw: "(--)", opts: gb, err: "not a phone number"},
		{name: "blank", raw: " \t ", opts: gb, err: "empty value"},
		{name: "invalid UTF-8", raw: "+44 7700 \xff900123", err: "UTF-8"},
	})
}

func TestNormalizeEmail(t *testing.T) {
	on := Options{EmailProviderRules: true}
	local64 := strings.Repeat("a", 64)
	runNormalizeCases(t, Email, []normalizeCase{
		{name: "trim and lower-case", raw: "  Ana.Silva@Example.COM\t", want: "ana.silva@example.com"},
		{name: "IDN domain", raw: "Ana@Bücher.example", want: "ana@xn--bcher-kva.example"},
		{name: "IDN domain upper-case", raw: "ANA@BÜCHER.EXAMPLE", want: "ana@xn--bcher-kva.example"},
		{name: "IDN domain decomposed", raw: "ana@Bu\u0308cher.example", want: "ana@xn--bcher-kva.example"},
		{name: "IDN domain already ASCII", raw: "ana@XN--BCHER-KVA.example", want: "ana@xn--bcher-kva.example"},
		{name: "Unicode local part composed", raw: "JOSÉ@example.com", want: "josé@example.com"},
		{name: "Unicode local part decomposed", raw: "Jose\u0301@example.com", want: "josé@example.com"},
		{name: "fullwidth dot in domain", raw: "ana@example\u3002com", want: "ana@example.com"},
		{name: "mailto prefix", raw: "MAILTO:ana@example.com", want: "ana@example.com"},
		{name: "trailing dot", raw: "ana@example.com.", want: "ana@example.com"},

		{name: "gmail rules off", raw: "A.N.A+tag@Gmail.com", want: "a.n.a+tag@gmail.com"},
		{name: "gmail rules on", raw: "A.N.A+tag@Gmail.com", opts: on, want: "ana@gmail.com"},
		{name: "googlemail rules on", raw: "ana.s+x+y@googlemail.com", opts: on, want: "anas@gmail.com"},
		{name: "googlemail rules off", raw: "ana.s+x@googlemail.com", want: "ana.s+x@googlemail.com"},
		{name: "outlook keeps dots", raw: "first.last+news@outlook.com", opts: on, want: "first.last@outlook.com"},
		{name: "hotmail keeps dots", raw: "first.last+a@HOTMAIL.com", opts: on, want: "first.last@hotmail.com"},
		{name: "proton drops . - _", raw: "first.la-st_x+z@proton.me", opts: on, want: "firstlastx@proton.me"},
		{name: "other domain untouched", raw: "first.last+z@example.com", opts: on, want: "first.last+z@example.com"},
		{name: "subdomain of gmail untouched", raw: "a.b+c@mail.gmail.com", opts: on, want: "a.b+c@mail.gmail.com"},

		{name: "no at", raw: "ana.example.com", err: "no '@'"},
		{name: "two ats", raw: "ana@b@example.com", err: "2 '@' characters"},
		{name: "nothing before at", raw: "@example.com", err: "nothing before"},
		{name: "nothing after at", raw: "ana@", err: "nothing after"},
		{name: "only dot after at", raw: "ana@.", err: "nothing after"},
		{name: "no dot in domain", raw: "ana@localhost", err: "no '.'"},
		{name: "space in local part", raw: "ana silva@example.com", err: "position 4"},
		{name: "display name form", raw: "Ana <ana@example.com>", err: "position 4"},
		{name: "quoted local part", raw: `"ana"@example.com`, err: "position 1"},
		{name: "underscore in domain", raw: "ana@exa_mple.com", err: "not a valid domain"},
		{name: "empty label", raw: "ana@example..com", err: "domain"},
		{name: "label too long", raw: "ana@" + strings.Repeat("a", 64) + ".com", err: "at most 63"},
		{name: "domain too long", raw: "ana@" + strings.Repeat(strings.Repeat("a", 60)+".", 5) + "com", err: "at most 253"},
		{name: "gmail tag only", raw: "+tag@gmail.com", opts: on, err: "after provider rules"},

		// RFC 5321 limits, in bytes of the lower-cased NFC address with its
		// domain in ASCII form.
		{name: "local part 64 bytes", raw: strings.ToUpper(local64) + "@example.com", want: local64 + "@example.com"},
		{name: "local part 65 bytes", raw: "b" + local64 + "@example.com", err: "local part is 65 bytes, more than 64 (RFC 5321)"},
		{name: "local part 70 bytes", raw: strings.Repeat("c", 70) + "@example.com", err: "local part is 70 bytes, more than 64 (RFC 5321)"},
		{name: "local part counted in bytes", raw: strings.Repeat("é", 33) + "@example.com", err: "local part is 66 bytes, more than 64"},
		{name: "local part longer lower-cased", raw: strings.Repeat("\u023a", 22) + "@example.com", err: "local part is 66 bytes, more than 64"},
		{name: "local part too long before provider rules", raw: strings.Repeat("a.", 32) + "b@gmail.com", opts: on, err: "local part is 65 bytes"},
		{name: "local part 64 bytes with provider rules", raw: strings.Repeat("a.", 31) + "b+@gmail.com", opts: on, want: strings.Repeat("a", 31) + "b@gmail.com"},
		{name: "address 254 bytes", raw: local64 + "@" + domainOf(189), want: local64 + "@" + domainOf(189)},
		{name: "address 255 bytes", raw: local64 + "@" + domainOf(190), err: "address is 255 bytes, more than 254 (RFC 5321)"},
		{name: "address too long in ASCII form", raw: local64 + "@" + strings.Repeat("bücher.", 14) + "example", err: "address is 268 bytes, more than 254 (RFC 5321)"},
		{name: "local part of 70000 bytes", raw: strings.Repeat("a", 70000) + "@example.com", err: "value is 70012 bytes, more than 4096"},
		{name: "blank", raw: "   ", err: "empty value"},
		{name: "Latin-1 bytes", raw: "ana@b\xfccher.example", err: "UTF-8"},
	})
}

// domainOf returns an ASCII domain name of exactly n bytes, n > 63, with
// labels of at most 63 bytes.
func domainOf(n int) string {
	var b strings.Builder
	for n-b.Len() > 63 {
		b.WriteString(strings.Repeat("d", 62) + ".")
	}
	b.WriteString(strings.Repeat("e", n-b.Len()))
	return b.String()
}

func TestNormalizeHash(t *testing.T) {
	pdq := strings.Repeat("0123456789abcdef", 4)
	md5 := "9e107d9d372bb6826bd81d3542a419d6"
	sha1 := "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
	sha256 := "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
	for _, tc := range []struct {
		kind  Kind
		value string
		cases []normalizeCase
	}{
		{PDQ, pdq, []normalizeCase{
			{name: "wrong length", raw: pdq[:63], err: "expected 64 hex digits, found 63 characters"},
			{name: "sha256 length is fine", raw: sha256, want: sha256},
		}},
		{MD5, md5, []normalizeCase{
			{name: "empty input hash", raw: "D41D8CD98F00B204E9800998ECF8427E", want: "d41d8cd98f00b204e9800998ecf8427e", warning: "empty input"},
			{name: "sha1 given", raw: sha1, err: "expected 32 hex digits, found 40 characters"},
		}},
		{SHA1, sha1, []normalizeCase{
			{name: "empty input hash", raw: "da39a3ee5e6b4b0d3255bfef95601890afd80709", want: "da39a3ee5e6b4b0d3255bfef95601890afd80709", warning: "empty input"},
		}},
		{SHA256, sha256, []normalizeCase{
			{name: "empty input hash", raw: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", warning: "empty input"},
			{name: "prefixed algorithm name", raw: "sha256:" + sha256, err: "found 71 characters; non-hex character at position 1"},
		}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			n := len(tc.value)
			upper := strings.ToUpper(tc.value)
			bad := tc.value[:4] + "g" + tc.value[5:]
			runNormalizeCases(t, tc.kind, append([]normalizeCase{
				{name: "lower-case", raw: tc.value, want: tc.value},
				{name: "upper-case", raw: upper, want: tc.value},
				{name: "0x prefix and spaces", raw: " 0x" + upper + " ", want: tc.value},
				{name: "0X prefix", raw: "0X" + tc.value, want: tc.value},
				{name: "too short", raw: tc.value[1:], err: fmt.Sprintf("found %d characters", n-1)},
				{name: "too long", raw: tc.value + "0", err: fmt.Sprintf("found %d characters", n+1)},
				{name: "non-hex", raw: bad, err: "non-hex character at position 5"},
				{name: "non-hex after 0x", raw: "0x" + bad, err: "non-hex character at position 7"},
				{name: "inner space", raw: tc.value[:8] + " " + tc.value[9:], err: "position 9"},
				{name: "only prefix", raw: "0x", err: "found 0 characters"},
				{name: "blank", raw: "", err: "empty value"},
			}, tc.cases...))
		})
	}
}

func TestMaxValueLen(t *testing.T) {
	// crypto/oprf.Input encodes "veilmatch/v1" || len16(kind) || kind ||
	// len16(value) || value and fails for a value over 65535 bytes; the
	// headroom dwarfs the length fields and any kind name.
	const prefix, headroom = "veilmatch/v1", 1024
	if !(MaxValueLen < 65535-len(prefix)-headroom) {
		t.Fatalf("MaxValueLen = %d; want far less than 65535", MaxValueLen)
	}
	for _, k := range identifierKinds {
		if _, err := oprf.Input(string(k), strings.Repeat("x", MaxValueLen)); err != nil {
			t.Errorf("oprf.Input(%s, value of MaxValueLen bytes) error = %v", k, err)
		}
	}
	// MaxValueLen is reached: an address at the RFC 5321 limit is accepted.
	addr := strings.Repeat("a", 64) + "@" + domainOf(189)
	if v, err := Normalize(Email, addr, Options{}); err != nil || len(v.Canonical) != MaxValueLen {
		t.Errorf("Normalize(address of %d bytes) = %d bytes, %v; want %d bytes", len(addr), len(v.Canonical), err, MaxValueLen)
	}
}

// TestNormalizeLongValues checks that long inputs of every kind are either
// rejected or normalized to at most MaxValueLen bytes, and that a raw value
// over 4096 bytes is rejected for its size whatever it holds.
func TestNormalizeLongValues(t *testing.T) {
	sha256 := "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"
	valid := map[Kind]string{
		Phone:  "+44 20 7946 0000",
		Email:  "ana@example.com",
		PDQ:    sha256,
		MD5:    sha256[:32],
		SHA1:   sha256[:40],
		SHA256: sha256,
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	for _, tc := range []struct {
		name  string
		kinds []Kind // nil means every kind
		raw   string
		want  int    // length of the canonical value, if accepted
		err   string // substring of the error, if rejected
	}{
		{name: "70000 bytes", raw: strings.Repeat("a", 70000), err: "value is 70000 bytes, more than 4096"},
		{name: "70000 digits", raw: strings.Repeat("7", 70000), err: "value is 70000 bytes, more than 4096"},
		{name: "4097 bytes of hex", raw: strings.Repeat("f", 4097), err: "value is 4097 bytes, more than 4096"},
		{name: "4097 bytes of spaces", raw: strings.Repeat(" ", 4097), err: "value is 4097 bytes, more than 4096"},
		{name: "4096 bytes of hex", kinds: []Kind{PDQ, MD5, SHA1, SHA256}, raw: strings.Repeat("f", 4096), err: "found 4096 characters"},
		{name: "4096 bytes of digits", kinds: []Kind{Phone}, raw: "+" + strings.Repeat("1", 4095), err: "too long"},
		{name: "4096 bytes of address", kinds: []Kind{Email}, raw: strings.Repeat("a", 4000) + "@" + domainOf(95), err: "local part is 4000 bytes"},
		{name: "4096 bytes of 4-byte runes", kinds: []Kind{Email}, raw: strings.Repeat("\U0001F600", 1020) + "@a.example", err: "local part is 4080 bytes"},
		{name: "longest phone", kinds: []Kind{Phone}, raw: "+62 001 80312345678901", want: 20},
		{name: "longest valid German phone", kinds: []Kind{Phone}, raw: "+49 30 1234567890123", want: 18},
	} {
		ks := tc.kinds
		if ks == nil {
			ks = kinds
		}
		for _, k := range ks {
			t.Run(tc.name+"/"+string(k), func(t *testing.T) {
				v, err := Normalize(k, tc.raw, Options{})
				if err == nil && len(v.Canonical) > MaxValueLen {
					t.Fatalf("Normalize = %d bytes; want at most MaxValueLen = %d", len(v.Canonical), MaxValueLen)
				}
				if tc.err != "" {
					if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tc.err) {
						t.Errorf("Normalize error = %v; want ErrRejected containing %q", err, tc.err)
					}
				} else if err != nil || len(v.Canonical) != tc.want {
					t.Errorf("Normalize = %d bytes, %v; want %d bytes", len(v.Canonical), err, tc.want)
				}
			})
		}
	}
	// A valid value padded to the size limit is still accepted.
	for _, k := range identifierKinds {
		v, err := Normalize(k, pad(valid[k], maxRawLen), Options{})
		if err != nil || len(v.Canonical) > MaxValueLen {
			t.Errorf("Normalize(%s, valid value padded to %d bytes) = %d bytes, %v; want it accepted", k, maxRawLen, len(v.Canonical), err)
		}
		if _, err := Normalize(k, pad(valid[k], maxRawLen+1), Options{}); err == nil || !strings.Contains(err.Error(), "value is 4097 bytes, more than 4096") {
			t.Errorf("Normalize(%s, valid value padded to %d bytes) error = %v; want it rejected for its size", k, maxRawLen+1, err)
		}
	}
}

// TestPhoneLength confirms the bound documented on normalizePhone: whatever
// the calling code and however many digits follow it, an accepted number is at
// most 21 bytes, so no phone number comes near MaxValueLen.
func TestPhoneLength(t *testing.T) {
	const maxPhoneLen = 1 + 3 + 17 // "+", calling code, national number
	longest := 0
	for cc := range phonenumbers.GetSupportedCallingCodes() {
		for n := 1; n <= 25; n++ {
			for _, digits := range []string{"1234567890", "9876543210", "8001234567"} {
				nsn := strings.Repeat(digits, 3)[:n]
				v, err := Normalize(Phone, fmt.Sprintf("+%d %s", cc, nsn), Options{})
				if err != nil {
					continue
				}
				if len(v.Canonical) > maxPhoneLen {
					t.Errorf("+%d with %d digits: canonical value is %d bytes; want at most %d", cc, n, len(v.Canonical), maxPhoneLen)
				}
				longest = max(longest, len(v.Canonical))
			}
		}
	}
	t.Logf("longest accepted phone number: %d bytes", longest)
}

func TestNormalizeOptions(t *testing.T) {
	if _, err := Normalize(Phone, "+447700900123", Options{Region: "UK"}); !errors.Is(err, ErrUnknownRegion) {
		t.Errorf("region UK: error = %v; want ErrUnknownRegion", err)
	}
	if _, err := Normalize(Kind("PHONE"), "+447700900123", Options{}); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("kind PHONE: error = %v; want ErrUnknownKind", err)
	}
	// The region only matters for phone numbers.
	if v, err := Normalize(Email, "ana@example.com", Options{Region: "UK"}); err != nil || v.Canonical != "ana@example.com" {
		t.Errorf("email with region UK = %+v, %v; want it accepted", v, err)
	}
}

func TestMetadata(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		kind Kind
		want map[string]string
	}{
		{Options{Region: "gb"}, Phone, map[string]string{"normalize_version": "1", "region": "GB"}},
		{Options{}, Phone, map[string]string{"normalize_version": "1", "region": "none"}},
		{Options{EmailProviderRules: true, Region: "GB"}, Email, map[string]string{"normalize_version": "1", "email_provider_rules": "on"}},
		{Options{}, Email, map[string]string{"normalize_version": "1", "email_provider_rules": "off"}},
		{Options{Region: "GB", EmailProviderRules: true}, SHA256, map[string]string{"normalize_version": "1"}},
	} {
		got := tc.opts.Metadata(tc.kind)
		if len(got) != len(tc.want) {
			t.Errorf("%+v.Metadata(%s) = %v; want %v", tc.opts, tc.kind, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%+v.Metadata(%s) = %v; want %v", tc.opts, tc.kind, got, tc.want)
				break
			}
		}
	}
}

// leaks reports whether msg contains raw, its digits, or canonical: error and
// warning texts end up in logs and must not carry watchlist values.
func leaks(msg, raw, canonical string) bool {
	var digits strings.Builder
	for _, r := range raw {
		if '0' <= r && r <= '9' {
			digits.WriteRune(r)
		}
	}
	trimmed := strings.TrimSpace(raw)
	return len(trimmed) >= 5 && strings.Contains(strings.ToLower(msg), strings.ToLower(trimmed)) ||
		digits.Len() >= 6 && strings.Contains(msg, digits.String()) ||
		len(canonical) >= 5 && strings.Contains(msg, canonical)
}

// sensitiveInputs are values whose errors and warnings are checked for leaks,
// rejected and accepted ones alike.
var sensitiveInputs = []struct {
	kind Kind
	raw  string
	opts Options
}{
	{Phone, "07700 900123", Options{Region: "GB"}},
	{Phone, "07700 900123", Options{}},
	{Phone, "+44 7700 900123 123", Options{}},
	{Phone, "+1 202 555 0123 ext 45", Options{}},
	{Phone, "+1 200 555 0123", Options{}},
	{Phone, "+999 1234567", Options{}},
	{Phone, "555 0123", Options{Region: "US"}},
	{Phone, "call 0207 946 0000 now", Options{Region: "GB"}},
	{Email, "Ana.Silva@Example.com", Options{}},
	{Email, "ana.silva@exa_mple.com", Options{}},
	{Email, "ana.silva@example", Options{}},
	{Email, "ana silva@example.com", Options{}},
	{Email, "ana.silva@b@example.com", Options{}},
	{Email, "ana.silva@" + strings.Repeat("x", 70) + ".com", Options{}},
	{Email, "ana.silva@xn--zz.example", Options{}},
	{MD5, "9e107d9d372bb6826bd81d3542a419d", Options{}},
	{MD5, "9e107d9d372bb6826bd81d3542a419dz", Options{}},
	{MD5, "d41d8cd98f00b204e9800998ecf8427e", Options{}},
	{SHA256, "sha256:d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592", Options{}},
}

func TestMessagesDoNotContainValue(t *testing.T) {
	for _, in := range sensitiveInputs {
		v, err := Normalize(in.kind, in.raw, in.opts)
		for _, msg := range []string{v.Warning, errString(err)} {
			if leaks(msg, in.raw, v.Canonical) {
				t.Errorf("Normalize(%s, %q): message %q contains the value", in.kind, in.raw, msg)
			}
		}
	}
}

// errString returns err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
