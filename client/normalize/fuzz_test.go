package normalize

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalize checks that Normalize never panics, that every error is a
// rejection or a bad-region error, that canonical values are at most
// MaxValueLen bytes and fixed points (normalizing them again gives the same
// value), and that no message repeats the value.
func FuzzNormalize(f *testing.F) {
	for _, s := range sensitiveInputs {
		f.Add(kindIndex(s.kind), s.raw, s.opts.Region, s.opts.EmailProviderRules)
	}
	f.Add(kindIndex(Email), "A.N.A+tag@Googlemail.com", "", true)
	f.Add(kindIndex(Phone), "081 234 5678", "th", false)
	f.Add(kindIndex(PDQ), " 0x"+strings.Repeat("F0", 32), "", false)
	f.Add(kindIndex(Email), strings.Repeat("Ab.", 20)+"c+tg@GMAIL.com", "", true)
	f.Add(kindIndex(Email), strings.Repeat("\u023a", 22)+"@B\u00fccher.example", "", false)
	f.Add(kindIndex(Email), strings.Repeat("a", 64)+"@"+strings.Repeat("b\u00fccher.", 14)+"example", "", false)
	f.Add(kindIndex(SHA1), strings.Repeat(" ", 4096), "", false)
	f.Fuzz(func(t *testing.T, k uint8, raw, region string, rules bool) {
		kind := identifierKinds[int(k)%len(identifierKinds)]
		opts := Options{Region: region, EmailProviderRules: rules}
		v, err := Normalize(kind, raw, opts)
		if err != nil {
			if errors.Is(err, ErrUnknownRegion) {
				return
			}
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Normalize(%s, %q) error %v wraps neither ErrRejected nor ErrUnknownRegion", kind, raw, err)
			}
			if fuzzLeaks(err.Error(), raw) {
				t.Fatalf("Normalize(%s, %q) error %q contains the value", kind, raw, err)
			}
			return
		}
		if v.Canonical == "" || !utf8.ValidString(v.Canonical) {
			t.Fatalf("Normalize(%s, %q) = %q; want a non-empty UTF-8 value", kind, raw, v.Canonical)
		}
		if len(v.Canonical) > MaxValueLen {
			t.Fatalf("Normalize(%s, %q) = %d bytes; want at most MaxValueLen = %d", kind, raw, len(v.Canonical), MaxValueLen)
		}
		if fuzzLeaks(v.Warning, raw) || len(v.Canonical) >= 8 && strings.Contains(v.Warning, v.Canonical) {
			t.Fatalf("Normalize(%s, %q) warning %q contains the value", kind, raw, v.Warning)
		}
		again, err := Normalize(kind, v.Canonical, opts)
		if err != nil || again.Canonical != v.Canonical {
			t.Fatalf("Normalize(%s, %q) = %q, but normalizing that gives %q, %v", kind, raw, v.Canonical, again.Canonical, err)
		}
	})
}

// FuzzReadCSV checks that ReadCSV never panics, that every row is either
// handed to the callback or rejected, that lines increase, that accepted values
// are canonical and at most MaxValueLen bytes, and that no reason repeats an
// accepted value.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte(messyCSV), "phone", kindIndex(Phone), "GB")
	f.Add([]byte("email\nAna@Bücher.example\n\"b@x.example\nc@example.com\n"), "", kindIndex(Email), "")
	f.Add([]byte("md5,sha1\n"+strings.Repeat("a", 32)+",x\n\"q\"q\n"), "2", kindIndex(SHA1), "")
	f.Add([]byte("email\nana@example.com\n"+strings.Repeat("b", 65)+"@example.com\n\""+strings.Repeat("c", 5000)+"\n@example.com\"\nd@example.com\n"), "email", kindIndex(Email), "")
	f.Fuzz(func(t *testing.T, data []byte, column string, k uint8, region string) {
		kind := identifierKinds[int(k)%len(identifierKinds)]
		opts := Options{Region: region}
		var rows []Row
		rep, err := ReadCSV(bytes.NewReader(data), column, kind, opts, func(r Row) error {
			rows = append(rows, r)
			return nil
		})
		if err != nil {
			if len(rows) != 0 || rep.Rows != 0 {
				t.Fatalf("ReadCSV error %v after %d rows; want errors only before the first row", err, rep.Rows)
			}
			return
		}
		if rep.Rows != rep.Accepted+len(rep.Rejected) || rep.Accepted != len(rows) {
			t.Fatalf("report %+v with %d rows handed over: rows lost", rep, len(rows))
		}
		last := 1
		for _, r := range rows {
			if r.Line <= last {
				t.Fatalf("row line %d after line %d", r.Line, last)
			}
			last = r.Line
			if len(r.Value) > MaxValueLen {
				t.Fatalf("line %d: value is %d bytes; want at most MaxValueLen = %d", r.Line, len(r.Value), MaxValueLen)
			}
			if v, err := Normalize(kind, r.Value, opts); err != nil || v.Canonical != r.Value {
				t.Fatalf("line %d: value %q is not canonical: %q, %v", r.Line, r.Value, v.Canonical, err)
			}
		}
		last = 1
		for _, r := range rep.Rejected {
			if r.Line <= last || r.Reason == "" {
				t.Fatalf("rejection %+v after line %d", r, last)
			}
			last = r.Line
		}
		for _, msg := range append(rep.Warnings, rep.Rejected...) {
			for _, r := range rows {
				if len(r.Value) >= 8 && strings.Contains(msg.Reason, r.Value) {
					t.Fatalf("line %d: %q contains the value of line %d", msg.Line, msg.Reason, r.Line)
				}
			}
		}
	})
}

// kindIndex returns the index of k in kinds, as the fuzz targets encode kinds.
func kindIndex(k Kind) uint8 {
	for i, known := range identifierKinds {
		if k == known {
			return uint8(i)
		}
	}
	panic("unknown kind " + string(k))
}

// fuzzLeaks reports whether msg contains raw, for inputs distinctive enough
// (at least 8 characters, 6 of them digits or '@') that a fixed message could
// not contain them by chance.
func fuzzLeaks(msg, raw string) bool {
	raw = strings.TrimSpace(raw)
	distinctive := 0
	for _, r := range raw {
		if '0' <= r && r <= '9' || r == '@' {
			distinctive++
		}
	}
	return len(raw) >= 8 && distinctive >= 6 && strings.Contains(msg, raw)
}
