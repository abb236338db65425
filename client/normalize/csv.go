package normalize

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Row is one accepted row of a CSV file.
type Row struct {
	// Line is the 1-based physical line on which the row starts; the header
	// is usually line 1.
	Line int
	// Value is the canonical identifier.
	Value string
	// Warning, if not empty, says why the value may not match, or that it
	// repeats the value of an earlier line. It never contains the value.
	Warning string
	// Label is what the agency knows the value by, if not the value: an
	// image's path.
	Label string
}

// Rejection is a line number with a reason. Report uses it both for rejected
// rows and for warnings about accepted ones; the reason never contains the
// identifier.
type Rejection struct {
	Line   int
	Reason string
}

// Report summarizes a CSV file read by ReadCSV.
type Report struct {
	// Rows counts the data rows read, not counting the header and blank lines.
	// After a nil error, Rows == Accepted + len(Rejected).
	Rows int
	// Accepted counts the rows handed to the callback without error.
	Accepted int
	// Warnings lists accepted rows (and possibly the header) that deserve a
	// look, in line order.
	Warnings []Rejection
	// Rejected lists every row that was not accepted, in line order.
	Rejected []Rejection
}

// utf8BOM is the byte order mark some spreadsheet programs write first.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ReadCSV reads CSV with a header row from r and normalizes one column as
// identifiers of the given kind, calling fn for every accepted row in order.
// fn may be nil to only check a file.
//
// column selects the column by header name (case-insensitive, surrounding
// spaces ignored), by 1-based number, or, if empty, the first column. A
// header name takes precedence over a number.
//
// Every data row either reaches fn or is listed in Report.Rejected with its
// line and reason: empty cells, rows too short for the column, rows with CSV
// syntax errors and values Normalize rejects. A value repeated within the file
// is accepted again with a warning naming the first line that had it. Reading
// stops with an error on invalid options, an unusable header or column, a read
// error, or an error from fn (wrapped, with its line); the Report then covers
// the rows read so far.
func ReadCSV(r io.Reader, column string, kind Kind, opts Options, fn func(Row) error) (Report, error) {
	var rep Report
	n, err := newNormalizer(kind, opts)
	if err != nil {
		return rep, err
	}
	br := bufio.NewReader(r)
	// A read error here is returned again by the first Read below.
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		if _, err := br.Discard(len(utf8BOM)); err != nil {
			return rep, fmt.Errorf("normalize: skip byte order mark: %w", err)
		}
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true

	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return rep, fmt.Errorf("%w: input is empty", ErrNoHeader)
	case err != nil:
		// csv.ParseError names line, column and cause, never field content.
		return rep, fmt.Errorf("normalize: read header row: %w", err)
	}
	headerLine, _ := cr.FieldPos(0)
	col, err := selectColumn(header, column, n)
	if err != nil {
		return rep, err
	}
	if _, err := n.normalize(header[col]); err == nil {
		rep.Warnings = append(rep.Warnings, Rejection{headerLine, fmt.Sprintf(
			"header cell of column %d looks like a %s value, not a name: if the file has no header row, that row was not read", col+1, kind)})
	}

	lastLine := headerLine
	firstLine := make(map[string]int) // canonical value -> first line with it
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rep, nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			rep.Rows++
			rep.Rejected = append(rep.Rejected, Rejection{perr.StartLine, syntaxReason(perr)})
			lastLine = perr.Line
			continue
		}
		if err != nil {
			return rep, fmt.Errorf("normalize: read CSV after line %d: %w", lastLine, err)
		}
		rep.Rows++
		line, _ := cr.FieldPos(0)
		lastLine = line
		if col >= len(rec) {
			rep.Rejected = append(rep.Rejected, Rejection{line, fmt.Sprintf("row has %d fields, column %d missing", len(rec), col+1)})
			continue
		}
		v, err := n.normalize(rec[col])
		if err != nil {
			rep.Rejected = append(rep.Rejected, Rejection{line, err.Error()})
			continue
		}
		if first, ok := firstLine[v.Canonical]; ok {
			v.Warning = joinWarnings(v.Warning, fmt.Sprintf("same value as line %d", first))
		} else {
			firstLine[v.Canonical] = line
		}
		if fn != nil {
			if err := fn(Row{Line: line, Value: v.Canonical, Warning: v.Warning, Label: v.Label}); err != nil {
				return rep, fmt.Errorf("normalize: line %d: %w", line, err)
			}
		}
		rep.Accepted++
		if v.Warning != "" {
			rep.Warnings = append(rep.Warnings, Rejection{line, v.Warning})
		}
	}
}

// syntaxReason describes a CSV syntax error without the field content.
func syntaxReason(perr *csv.ParseError) string {
	reason := fmt.Sprintf("CSV syntax error at line %d, column %d: %v", perr.Line, perr.Column, perr.Err)
	if perr.Line > perr.StartLine {
		reason += fmt.Sprintf("; lines %d-%d were read as this one row", perr.StartLine, perr.Line)
	}
	return reason
}

// joinWarnings joins two warnings with "; ", skipping empty ones.
func joinWarnings(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// selectColumn returns the 0-based index of column in header; see ReadCSV.
func selectColumn(header []string, column string, n *normalizer) (int, error) {
	want := strings.TrimSpace(column)
	if want == "" {
		return 0, nil
	}
	found := -1
	for i, h := range header {
		if !strings.EqualFold(strings.TrimSpace(h), want) {
			continue
		}
		if found >= 0 {
			return 0, fmt.Errorf("%w: header names %d and %d both match %q; pass a column number", ErrColumn, found+1, i+1, column)
		}
		found = i
	}
	if found >= 0 {
		return found, nil
	}
	if num, err := strconv.Atoi(want); err == nil {
		if num >= 1 && num <= len(header) {
			return num - 1, nil
		}
		return 0, fmt.Errorf("%w: number %d out of range; header has %d columns: %s", ErrColumn, num, len(header), describeHeader(header, n))
	}
	return 0, fmt.Errorf("%w: no header named %q; header columns are %s", ErrColumn, column, describeHeader(header, n))
}

// describeHeader lists header names with their numbers for error messages.
// A cell that looks like an identifier is described instead of shown: in a
// file without a header row the "header" is the first watchlist entry.
func describeHeader(header []string, n *normalizer) string {
	parts := make([]string, len(header))
	for i, h := range header {
		if looksLikeIdentifier(h, n) {
			parts[i] = fmt.Sprintf("%d (looks like an identifier, not a name)", i+1)
		} else {
			parts[i] = fmt.Sprintf("%d %q", i+1, strings.TrimSpace(h))
		}
	}
	return strings.Join(parts, ", ")
}

// looksLikeIdentifier reports whether s may be an identifier rather than a
// column name: it contains an '@' or several digits, or normalizes as the
// kind being read.
func looksLikeIdentifier(s string, n *normalizer) bool {
	digits := 0
	for _, r := range s {
		if '0' <= r && r <= '9' {
			digits++
		}
	}
	if digits >= 5 || strings.ContainsRune(s, '@') {
		return true
	}
	_, err := n.normalize(s)
	return err == nil
}
