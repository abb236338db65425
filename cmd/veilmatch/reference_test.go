package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReferenceUpToDate: docs/reference.md is what `veilmatch reference`
// prints, so the documented flags cannot drift from the commands.
func TestReferenceUpToDate(t *testing.T) {
	var got bytes.Buffer
	if err := writeReference(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "reference.md")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("%s is out of date: run 'go run ./cmd/veilmatch reference > docs/reference.md'", path)
	}
	if bytes.Contains(want, []byte("panic")) {
		t.Errorf("a command's usage panics: %s", want[bytes.Index(want, []byte("panic")):][:200])
	}
	for _, p := range [][]string{{"hub"}, {"keyserver", "dkg", "finish"}, {"agency", "publish"}, {"certs", "issue"}, {"dev", "certs"}} {
		if !bytes.Contains(want, []byte("## veilmatch "+strings.Join(p, " ")+"\n")) {
			t.Errorf("the reference lacks veilmatch %s", strings.Join(p, " "))
		}
	}
}
