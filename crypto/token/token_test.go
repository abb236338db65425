package token

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestFromOutput(t *testing.T) {
	out := make([]byte, 64)
	for i := range out {
		out[i] = byte(i)
	}
	tok, err := FromOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tok.Bytes(), out[:Size]) {
		t.Fatalf("token is not the first %d bytes of the output", Size)
	}
	for _, n := range []int{0, 32, 63, 65} {
		if _, err := FromOutput(make([]byte, n)); !errors.Is(err, ErrSize) {
			t.Errorf("FromOutput(%d bytes) error = %v, want ErrSize", n, err)
		}
	}
}

func TestParse(t *testing.T) {
	b := bytes.Repeat([]byte{0xab}, Size)
	tok, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 0 // Parse must copy.
	if tok[0] != 0xab {
		t.Fatal("Parse aliases its input")
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := Parse(make([]byte, n)); !errors.Is(err, ErrSize) {
			t.Errorf("Parse(%d bytes) error = %v, want ErrSize", n, err)
		}
	}
}

func TestNeverPrinted(t *testing.T) {
	var tok Token
	for i := range tok {
		tok[i] = 0xcd
	}
	k := Keyed{KeyID: "k1", Token: tok}
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%x", "%X", "%q"} {
		for _, v := range []any{tok, k, &k} {
			s := fmt.Sprintf(verb, v)
			if bytes.Contains([]byte(s), []byte("cdcd")) || bytes.Contains([]byte(s), []byte("CDCD")) ||
				bytes.Contains([]byte(s), []byte("205 205")) {
				t.Errorf("fmt %s of %T prints the token: %s", verb, v, s)
			}
		}
	}
}
