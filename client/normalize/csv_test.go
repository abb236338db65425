package normalize

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// messyCSV has a byte order mark, CRLF line ends, a blank line, quoted fields
// (one spanning two lines), and bad rows among good ones.
const messyCSV = "\ufeffName, Phone ,Notes\r\n" + // 1 header
	"Ana,07700 900123,ok\r\n" + // 2 accepted, reserved range
	"\r\n" + // 3 blank, skipped
	"\"Smith, Bob\",(020) 7946 0000,\"two\r\nlines\"\r\n" + // 4-5 accepted
	"Carl,,empty cell\r\n" + // 6 rejected: empty
	"Dana\r\n" + // 7 rejected: too short
	"Eve,+44 12,impossible\r\n" + // 8 rejected: too short a number
	"Fay,\"020 7946 0000\",same as Bob\r\n" + // 9 accepted, duplicate of 4
	"Gus,07700 9001\"23,bare quote\r\n" + // 10 rejected: syntax
	"Hal, +66 81 234 5678 ,Thai\r\n" // 11 accepted

func TestReadCSVMessy(t *testing.T) {
	wantRows := []Row{
		{Line: 2, Value: "+447700900123", Warning: "not a valid number for its country (unassigned or reserved range?); kept"},
		{Line: 4, Value: "+442079460000"},
		{Line: 9, Value: "+442079460000", Warning: "same value as line 4"},
		{Line: 11, Value: "+66812345678"},
	}
	wantReport := Report{
		Rows:     8,
		Accepted: 4,
		Warnings: []Rejection{{2, wantRows[0].Warning}, {9, wantRows[2].Warning}},
		Rejected: []Rejection{
			{6, "empty value"},
			{7, "row has 1 fields, column 2 missing"},
			{8, "too short for its country calling code"},
			{10, "CSV syntax error at line 10, column 15: bare \" in non-quoted-field"},
		},
	}
	for _, column := range []string{"phone", " PHONE ", "2"} {
		t.Run(column, func(t *testing.T) {
			wantRead(t, messyCSV, column, Phone, Options{Region: "GB"}, wantRows, wantReport)
		})
	}
}

func TestReadCSVColumns(t *testing.T) {
	const in = "id,E-Mail,email2\n1,Ana@Example.com,b@example.com\n2,c@example.com\n"
	for _, tc := range []struct {
		column string
		want   []string // canonical values
		err    string   // substring of the error
	}{
		{column: "", err: ""}, // first column: ids are not e-mail addresses
		{column: "e-mail", want: []string{"ana@example.com", "c@example.com"}},
		{column: "3", want: []string{"b@example.com"}},
		{column: "1"},
		{column: "4", err: `number 4 out of range; header has 3 columns: 1 "id", 2 "E-Mail", 3 "email2"`},
		{column: "0", err: "number 0 out of range"},
		{column: "mail", err: `no header named "mail"; header columns are 1 "id", 2 "E-Mail", 3 "email2"`},
	} {
		t.Run(tc.column, func(t *testing.T) {
			var got []string
			rep, err := ReadCSV(strings.NewReader(in), tc.column, Email, Options{}, func(r Row) error {
				got = append(got, r.Value)
				return nil
			})
			if tc.err != "" {
				if !errors.Is(err, ErrColumn) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ReadCSV error = %v; want ErrColumn containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadCSV error = %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("values = %q; want %q", got, tc.want)
			}
			if rep.Rows != 2 || rep.Accepted+len(rep.Rejected) != 2 {
				t.Errorf("report = %+v; want 2 rows, each accepted or rejected", rep)
			}
		})
	}
}

func TestReadCSVColumnPrecedence(t *testing.T) {
	// A header named "2" wins over column number 2; duplicate names are an error.
	const in = "2,x\n+12025550123,+14155552671\n"
	var got []string
	if _, err := ReadCSV(strings.NewReader(in), "2", Phone, Options{}, func(r Row) error {
		got = append(got, r.Value)
		return nil
	}); err != nil || !reflect.DeepEqual(got, []string{"+12025550123"}) {
		t.Errorf("column \"2\" = %q, %v; want the column named 2", got, err)
	}
	_, err := ReadCSV(strings.NewReader("Phone,phone\n+12025550123,+14155552671\n"), "phone", Phone, Options{}, nil)
	if !errors.Is(err, ErrColumn) || !strings.Contains(err.Error(), "header names 1 and 2 both match") {
		t.Errorf("duplicate header error = %v; want ErrColumn naming both columns", err)
	}
}

func TestReadCSVUnterminatedQuote(t *testing.T) {
	in := "phone\n+12025550123\n\"+1 415 555 2671\n+14155552672\n+14155552673\n"
	var rows []Row
	rep, err := ReadCSV(strings.NewReader(in), "", Phone, Options{}, func(r Row) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadCSV error = %v", err)
	}
	if rep.Rows != 2 || rep.Accepted != 1 || len(rows) != 1 || len(rep.Rejected) != 1 {
		t.Fatalf("report = %+v; want 2 rows, 1 accepted, 1 rejected", rep)
	}
	want := Rejection{3, "CSV syntax error at line 5, column 14: extraneous or missing \" in quoted-field; lines 3-5 were read as this one row"}
	if rep.Rejected[0] != want {
		t.Errorf("rejected = %+v; want %+v", rep.Rejected[0], want)
	}
}

func TestReadCSVErrors(t *testing.T) {
	fnErr := errors.New("upload failed")
	for _, tc := range []struct {
		name   string
		in     io.Reader
		kind   Kind
		opts   Options
		fn     func(Row) error
		target error  // errors.Is target
		msg    string // substring of the error
		rep    Report
	}{
		{name: "empty input", in: strings.NewReader(""), kind: Phone, target: ErrNoHeader},
		{name: "only BOM", in: strings.NewReader("\ufeff"), kind: Phone, target: ErrNoHeader},
		{name: "only blank lines", in: strings.NewReader("\n\r\n\n"), kind: Phone, target: ErrNoHeader},
		{name: "bad header", in: strings.NewReader("\"phone\"x\n+12025550123\n"), kind: Phone, msg: "read header row: parse error on line 1"},
		{name: "unknown kind", in: strings.NewReader("x\n"), kind: "imei", target: ErrUnknownKind},
		{name: "unknown region", in: strings.NewReader("x\n"), kind: Phone, opts: Options{Region: "XX"}, target: ErrUnknownRegion},
		{
			name:   "read error",
			in:     io.MultiReader(strings.NewReader("phone\n+12025550123\n"), iotest.ErrReader(fnErr)),
			kind:   Phone,
			target: fnErr,
			msg:    "read CSV after line 2",
			rep:    Report{Rows: 1, Accepted: 1},
		},
		{
			name: "callback error",
			in:   strings.NewReader("phone\n+12025550123\n+14155552671\n+14155552672\n"),
			kind: Phone,
			fn: func(r Row) error {
				if r.Line == 3 {
					return fnErr
				}
				return nil
			},
			target: fnErr,
			msg:    "normalize: line 3: upload failed",
			rep:    Report{Rows: 2, Accepted: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := ReadCSV(tc.in, "", tc.kind, tc.opts, tc.fn)
			if err == nil {
				t.Fatalf("ReadCSV error = nil, report %+v", rep)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %v does not wrap %v", err, tc.target)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if !reflect.DeepEqual(rep, tc.rep) {
				t.Errorf("report = %+v; want %+v", rep, tc.rep)
			}
		})
	}
}

func TestReadCSVHeaderLooksLikeData(t *testing.T) {
	// Without a header row the first entry would be taken as the header:
	// warn about it, and never show it in a column error.
	const in = "+447700900123,ana@example.com\n+12025550123,ana@example.com\n"
	rep, err := ReadCSV(strings.NewReader(in), "", Phone, Options{}, nil)
	if err != nil {
		t.Fatalf("ReadCSV error = %v", err)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Line != 1 || !strings.Contains(rep.Warnings[0].Reason, "looks like a phone value") {
		t.Errorf("warnings = %+v; want one about line 1 looking like a value", rep.Warnings)
	}
	_, err = ReadCSV(strings.NewReader(in), "phone", Phone, Options{}, nil)
	if !errors.Is(err, ErrColumn) {
		t.Fatalf("ReadCSV error = %v; want ErrColumn", err)
	}
	if leaks(err.Error(), "+447700900123", "") || leaks(err.Error(), "ana@example.com", "") {
		t.Errorf("column error %q shows a header cell that looks like an identifier", err)
	}
	if !strings.Contains(err.Error(), "1 (looks like an identifier, not a name), 2 (looks like an identifier, not a name)") {
		t.Errorf("column error %q does not describe the header cells", err)
	}
}

func TestReadCSVMessagesDoNotContainValue(t *testing.T) {
	for _, kind := range identifierKinds {
		var in strings.Builder
		in.WriteString("value\n")
		var raws []string
		for _, s := range sensitiveInputs {
			if s.kind == kind {
				raws = append(raws, s.raw)
				// Each value twice, so that duplicate warnings are checked too.
				in.WriteString(`"` + s.raw + "\"\n\"" + s.raw + "\"\n")
			}
		}
		var values []string
		rep, err := ReadCSV(strings.NewReader(in.String()), "value", kind, Options{Region: "GB"}, func(r Row) error {
			values = append(values, r.Value)
			return nil
		})
		if err != nil {
			t.Fatalf("ReadCSV(%s) error = %v", kind, err)
		}
		for _, msg := range append(rep.Warnings, rep.Rejected...) {
			for _, raw := range raws {
				if leaks(msg.Reason, raw, "") {
					t.Errorf("%s line %d: %q contains a value", kind, msg.Line, msg.Reason)
				}
			}
			for _, v := range values {
				if leaks(msg.Reason, "", v) {
					t.Errorf("%s line %d: %q contains a value", kind, msg.Line, msg.Reason)
				}
			}
		}
	}
}

func TestReadCSVLongValues(t *testing.T) {
	// Before the length checks these rows were accepted, and the OPRF
	// encoding of the 70,000-byte one failed the whole list later, naming
	// an entry index instead of a line.
	long := strings.Repeat("a", 70000)
	in := "id,email,notes\n" +
		"1,ana@example.com,ok\n" + // 2 accepted
		"2," + long + "@example.com,huge local part\n" + // 3 rejected
		"3," + strings.Repeat("b", 65) + "@example.com,local part one too long\n" + // 4 rejected
		"4," + strings.Repeat("c", 64) + "@example.com,local part at the limit\n" + // 5 accepted
		"5,\"" + long[:35000] + "\n" + long[:35000] + "@example.com\",quoted over two lines\n" + // 6-7 rejected
		"6,bob@example.com," + long + "\n" + // 8 accepted: only the selected column is bounded
		"7," + strings.Repeat("d", 64) + "@" + domainOf(190) + ",address one too long\n" + // 9 rejected
		"8,carl@example.com,last\n" // 10 accepted
	wantRows := []Row{
		{Line: 2, Value: "ana@example.com"},
		{Line: 5, Value: strings.Repeat("c", 64) + "@example.com"},
		{Line: 8, Value: "bob@example.com"},
		{Line: 10, Value: "carl@example.com"},
	}
	wantReport := Report{
		Rows:     8,
		Accepted: 4,
		Rejected: []Rejection{
			{3, "value is 70012 bytes, more than 4096"},
			{4, "local part is 65 bytes, more than 64 (RFC 5321)"},
			{6, "value is 70013 bytes, more than 4096"},
			{9, "address is 255 bytes, more than 254 (RFC 5321)"},
		},
	}
	wantRead(t, in, "email", Email, Options{}, wantRows, wantReport)

	// Every kind rejects a huge cell on its own line and reads on.
	for _, kind := range identifierKinds {
		in := "value\n" + strings.Repeat("9", 70000) + "\n" + strings.Repeat("8", 5000) + "\n"
		rep, err := ReadCSV(strings.NewReader(in), "", kind, Options{}, nil)
		want := Report{Rows: 2, Rejected: []Rejection{
			{2, "value is 70000 bytes, more than 4096"},
			{3, "value is 5000 bytes, more than 4096"},
		}}
		if err != nil || !reflect.DeepEqual(rep, want) {
			t.Errorf("ReadCSV(%s) = %+v, %v; want %+v", kind, rep, err, want)
		}
	}
}

// wantRead reads in as ReadCSV does and requires exactly wantRows and
// wantReport.
func wantRead(t *testing.T, in, column string, kind Kind, opts Options, wantRows []Row, wantReport Report) {
	t.Helper()
	var rows []Row
	rep, err := ReadCSV(strings.NewReader(in), column, kind, opts, func(r Row) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadCSV error = %v", err)
	}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("rows = %+v\nwant %+v", rows, wantRows)
	}
	if !reflect.DeepEqual(rep, wantReport) {
		t.Errorf("report = %+v\nwant %+v", rep, wantReport)
	}
}
