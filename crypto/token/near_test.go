package token

import (
	"database/sql"
	"testing"

	_ "modernc.org/sqlite"
)

// TestPDQDistanceBound decodes every count a pair of hashes can share
// (any number of chunks in each band) and checks the bound.
func TestPDQDistanceBound(t *testing.T) {
	seen := map[int]bool{}
	for a := 0; a <= 8; a++ {
		for b := 0; a+b <= 8; b++ {
			for c := 0; a+b+c <= 8; c++ {
				n := 529*a + 64*b + 6*c
				if seen[n] {
					t.Fatalf("count %d decodes two ways", n)
				}
				seen[n] = true
				got, ok := PDQDistanceBound(n)
				want := b + 3*c + 5*(8-a-b-c)
				if !ok || got != want {
					t.Errorf("bound(%d) = %d, %v; want %d (a=%d b=%d c=%d)", n, got, ok, want, a, b, c)
				}
			}
		}
	}
	for _, n := range []int{1, 5, 7, 530 * 9, PDQTokens + 1} {
		if _, ok := PDQDistanceBound(n); ok {
			t.Errorf("bound(%d) accepted a count no pair of hashes shares", n)
		}
	}
	if !PDQNear(PDQTokens) || PDQNear(0) || PDQNear(6) || PDQNear(64) {
		t.Error("identical hashes must match; one shared chunk must not")
	}
}

// TestPDQNearSQL evaluates the SQL form on a real SQLite database for every
// count up to PDQTokens and a few beyond, against PDQNear.
func TestPDQNearSQL(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`WITH RECURSIVE n(v) AS (SELECT 0 UNION ALL SELECT v + 1 FROM n WHERE v < ?)
		SELECT v, `+PDQNearSQL("v")+` FROM n`, PDQTokens+600)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen, near := 0, 0
	for rows.Next() {
		var v int
		var got bool
		if err := rows.Scan(&v, &got); err != nil {
			t.Fatal(err)
		}
		if got != PDQNear(v) {
			t.Errorf("count %d: SQL says %v, Go %v", v, got, PDQNear(v))
		}
		seen++
		if got {
			near++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != PDQTokens+601 || near == 0 {
		t.Fatalf("evaluated %d counts, %d near", seen, near)
	}
}
