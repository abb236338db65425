package sqlite

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"modernc.org/sqlite"
)

// connect opens one stmtConn to a new database file with table t(x).
func connect(t *testing.T) *stmtConn {
	t.Helper()
	c, err := sqlite.NewConnector(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := stmtConnector{c}.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sc := conn.(*stmtConn)
	t.Cleanup(func() {
		if err := sc.Close(); err != nil {
			t.Error(err)
		}
	})
	if _, err := sc.ExecContext(t.Context(), `CREATE TABLE t (x INTEGER)`, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := sc.ExecContext(t.Context(), `INSERT INTO t (x) VALUES (?)`, []driver.NamedValue{{Ordinal: 1, Value: int64(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	return sc
}

// column reads the single column of every row rows returns, and closes them.
func column(t *testing.T, rows driver.Rows) []int64 {
	t.Helper()
	defer rows.Close()
	var out []int64
	v := make([]driver.Value, 1)
	for {
		err := rows.Next(v)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v[0].(int64))
	}
}

func TestStmtConnKeepsStatements(t *testing.T) {
	c := connect(t)
	const q = `SELECT x FROM t WHERE x >= ? ORDER BY x`
	kept := c.stmts[`INSERT INTO t (x) VALUES (?)`]
	if kept == nil || len(c.stmts) != 2 {
		t.Fatalf("kept %d statements, want the CREATE and the INSERT", len(c.stmts))
	}
	for _, from := range []int64{0, 1, 2, 3} {
		rows, err := c.QueryContext(t.Context(), q, []driver.NamedValue{{Ordinal: 1, Value: from}})
		if err != nil {
			t.Fatal(err)
		}
		got := column(t, rows)
		if want := max(0, 3-int(from)); len(got) != want || want > 0 && got[0] != from {
			t.Errorf("rows from %d: %v", from, got)
		}
	}
	if s := c.stmts[q]; s == nil || s.busy || len(c.stmts) != 3 {
		t.Errorf("after four runs of one query: %d statements kept, %+v", len(c.stmts), s)
	}
}

// A query run again while rows of its kept statement are open runs as a
// new statement; both read their own rows.
func TestStmtConnNestedQuery(t *testing.T) {
	c := connect(t)
	const q = `SELECT x FROM t WHERE x >= ? ORDER BY x`
	outer, err := c.QueryContext(t.Context(), q, []driver.NamedValue{{Ordinal: 1, Value: int64(0)}})
	if err != nil {
		t.Fatal(err)
	}
	v := make([]driver.Value, 1)
	if err := outer.Next(v); err != nil || v[0] != int64(0) {
		t.Fatalf("outer first row %v, %v", v, err)
	}
	inner, err := c.QueryContext(t.Context(), q, []driver.NamedValue{{Ordinal: 1, Value: int64(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := column(t, inner); len(got) != 1 || got[0] != 2 {
		t.Errorf("inner rows %v, want [2]", got)
	}
	if got := column(t, outer); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("outer rows after the first %v, want [1 2]", got)
	}
	if c.stmts[q].busy {
		t.Error("kept statement still busy after its rows closed")
	}
}

func TestStmtConnBoundAndErrors(t *testing.T) {
	c := connect(t)
	if _, err := c.QueryContext(t.Context(), `SELEC x FROM t`, nil); err == nil || !strings.Contains(err.Error(), "syntax") {
		t.Errorf("bad query: %v, want a syntax error", err)
	}
	if _, ok := c.stmts[`SELEC x FROM t`]; ok {
		t.Error("a query that failed to prepare was kept")
	}
	for i := range maxStmts + 10 {
		rows, err := c.QueryContext(t.Context(), fmt.Sprintf(`SELECT x + %d FROM t WHERE x = 0`, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := column(t, rows); len(got) != 1 || got[0] != int64(i) {
			t.Fatalf("query %d: %v", i, got)
		}
	}
	if len(c.stmts) != maxStmts {
		t.Errorf("kept %d statements, want at most %d", len(c.stmts), maxStmts)
	}
}
