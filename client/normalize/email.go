package normalize

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// provider describes how a mail provider maps addresses to mailboxes. Every
// provider listed ignores a "+tag" suffix of the local part.
type provider struct {
	domain string // canonical domain of the mailbox
	drop   string // characters of the local part that are ignored
}

// providers maps the ASCII domains of large mail providers to their rules.
// Gmail ignores dots (and googlemail.com is gmail.com); Proton ignores ".",
// "-" and "_" (its own web client strips them); Outlook.com, iCloud and
// Fastmail only support "+" sub-addressing. Bump rulesVersion when changing
// this table.
var providers = map[string]provider{
	"gmail.com":      {domain: "gmail.com", drop: "."},
	"googlemail.com": {domain: "gmail.com", drop: "."},
	"proton.me":      {domain: "proton.me", drop: ".-_"},
	"protonmail.com": {domain: "protonmail.com", drop: ".-_"},
	"protonmail.ch":  {domain: "protonmail.ch", drop: ".-_"},
	"pm.me":          {domain: "pm.me", drop: ".-_"},
	"outlook.com":    {domain: "outlook.com"},
	"hotmail.com":    {domain: "hotmail.com"},
	"live.com":       {domain: "live.com"},
	"msn.com":        {domain: "msn.com"},
	"icloud.com":     {domain: "icloud.com"},
	"me.com":         {domain: "me.com"},
	"mac.com":        {domain: "mac.com"},
	"fastmail.com":   {domain: "fastmail.com"},
	"fastmail.fm":    {domain: "fastmail.fm"},
}

// RFC 5321 section 4.5.3.1 limits, in octets of the address as sent: the
// local part (4.5.3.1.1) and the path, which holds the address between angle
// brackets in 256 octets (4.5.3.1.3). The domain limit of 255 octets
// (4.5.3.1.2) is subsumed by the DNS limit of 253 that asciiDomain applies.
const (
	maxLocalLen   = 64
	maxAddressLen = 254
)

// localSpecials are the characters RFC 5322 does not allow in an unquoted
// local part. Quoted local parts are not supported.
const localSpecials = `"(),:;<>[\]`

// normalizeEmail returns raw trimmed, in Unicode NFC, lower-cased, with its
// domain in ASCII (IDNA) form, and with provider rules applied if rules is set.
//
// The RFC 5321 length limits are checked on the address in that form before
// provider rules: lower-casing and IDNA can make an address longer than it was
// written, so the raw lengths say nothing, and an address too long to be sent
// is not a mailbox's address even if provider rules would shorten it. Provider
// rules only remove characters, so the canonical value is within the limits
// too, and at most MaxValueLen bytes.
func normalizeEmail(raw string, rules bool) (Value, error) {
	s := strings.TrimSpace(raw)
	if len(s) >= 7 && strings.EqualFold(s[:7], "mailto:") {
		s = s[7:]
	}
	s = norm.NFC.String(strings.ToLower(norm.NFC.String(s)))
	at := strings.LastIndexByte(s, '@')
	switch {
	case at < 0:
		return Value{}, errors.New("no '@'")
	case strings.Count(s, "@") > 1:
		return Value{}, fmt.Errorf("%d '@' characters, expected one", strings.Count(s, "@"))
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return Value{}, errors.New("nothing before the '@'")
	}
	if len(local) > maxLocalLen {
		return Value{}, fmt.Errorf("local part is %d bytes, more than %d (RFC 5321)", len(local), maxLocalLen)
	}
	for i, r := range []rune(local) {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(localSpecials, r) {
			return Value{}, fmt.Errorf("character not allowed in an address at position %d", i+1)
		}
	}
	domain, err := asciiDomain(domain)
	if err != nil {
		return Value{}, err
	}
	if n := len(local) + 1 + len(domain); n > maxAddressLen {
		return Value{}, fmt.Errorf("address is %d bytes, more than %d (RFC 5321)", n, maxAddressLen)
	}
	if p, ok := providers[domain]; ok && rules {
		if i := strings.IndexByte(local, '+'); i >= 0 {
			local = local[:i]
		}
		local = strings.Map(func(r rune) rune {
			if strings.ContainsRune(p.drop, r) {
				return -1
			}
			return r
		}, local)
		if local == "" {
			return Value{}, errors.New("nothing left before the '@' after provider rules")
		}
		domain = p.domain
	}
	return Value{Canonical: local + "@" + domain}, nil
}

// asciiDomain returns domain in the ASCII form used for DNS lookups, or an
// error that does not contain the domain. One trailing dot is removed.
func asciiDomain(domain string) (string, error) {
	domain = strings.TrimSuffix(domain, ".")
	if domain == "" {
		return "", errors.New("nothing after the '@'")
	}
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		// The idna error quotes the offending label, so it is not wrapped.
		return "", errors.New("domain is not a valid domain name")
	}
	labels := strings.Split(ascii, ".")
	switch {
	case len(labels) < 2:
		return "", errors.New("domain has no '.'")
	case len(ascii) > 253:
		return "", fmt.Errorf("domain is %d characters long in ASCII form, at most 253 allowed", len(ascii))
	}
	for i, l := range labels {
		if l == "" {
			return "", fmt.Errorf("domain label %d is empty", i+1)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("domain label %d is %d characters long in ASCII form, at most 63 allowed", i+1, len(l))
		}
	}
	return ascii, nil
}
