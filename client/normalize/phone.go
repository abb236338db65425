package normalize

import (
	"errors"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
)

// normalizePhone returns raw in E.164 form. region is the default region for
// numbers in national format, or empty.
//
// The result is at most 21 bytes, well within MaxValueLen: the phone library
// parses at most 250 characters, takes a country calling code of at most 3
// digits and a national number of at most 17, and only lengths its metadata
// lists as possible for the country pass the check below. That can be more
// than the 15 digits E.164 allows: the metadata lists longer numbers that are
// in use (German extension dialling, Indonesian and Japanese freephone), so
// they are kept.
func normalizePhone(raw, region string) (Value, error) {
	s := strings.TrimSpace(raw)
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.Is(unicode.Pd, r) || r == '.' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return Value{}, errors.New("not a phone number")
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil {
		return Value{}, phoneParseError(err, s, region)
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE:
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		// E.164 of a number without its area code would never match the
		// full number, so it is rejected rather than kept with a warning.
		return Value{}, errors.New("local number without its area code")
	case phonenumbers.TOO_SHORT:
		return Value{}, errors.New("too short for its country calling code")
	case phonenumbers.TOO_LONG:
		return Value{}, errors.New("too long for its country calling code")
	case phonenumbers.INVALID_COUNTRY_CODE:
		return Value{}, errors.New("unknown country calling code")
	default:
		return Value{}, errors.New("impossible length for its country calling code")
	}
	var warnings []string
	if !phonenumbers.IsValidNumber(num) {
		warnings = append(warnings, "not a valid number for its country (unassigned or reserved range?); kept")
	}
	if num.GetExtension() != "" {
		warnings = append(warnings, "extension dropped")
	}
	canonical := phonenumbers.Format(num, phonenumbers.E164)
	// The canonical form must normalize to itself, or an agency holding it
	// would never match one holding the raw form. With a national prefix
	// inside an odd number (leading zeros after the country code) the
	// phone library can strip digits on every pass; such a number has no
	// stable E.164 form and is rejected. An input that is already its
	// canonical form is its own proof (a number with "+" is parsed without
	// the region): the second parse, a third of the cost, is skipped.
	v := Value{Canonical: canonical, Warning: strings.Join(warnings, "; ")}
	if s == canonical {
		return v, nil
	}
	if again, err := phonenumbers.Parse(canonical, ""); err != nil || phonenumbers.Format(again, phonenumbers.E164) != canonical {
		return Value{}, errors.New("no stable international form (leading zeros after the country code)")
	}
	return v, nil
}

// phoneParseError turns an error from phonenumbers.Parse into a reason that
// does not repeat the number. s is the cleaned input.
func phoneParseError(err error, s, region string) error {
	switch {
	case errors.Is(err, phonenumbers.ErrInvalidCountryCode):
		if region == "" && !strings.ContainsAny(s, "+\uff0b") {
			return errors.New("national-format number but no default region: pass --region (for example --region GB) or write the number with +country code")
		}
		return errors.New("unknown country calling code")
	case errors.Is(err, phonenumbers.ErrNotANumber):
		return errors.New("not a phone number")
	case errors.Is(err, phonenumbers.ErrTooShortNSN), errors.Is(err, phonenumbers.ErrTooShortAfterIDD):
		return errors.New("too short to be a phone number")
	case errors.Is(err, phonenumbers.ErrNumTooLong):
		return errors.New("too long to be a phone number")
	default:
		return errors.New("cannot be parsed as a phone number")
	}
}
