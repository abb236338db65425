package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFiles: the --config files of agencies and auditors carry the
// hub and the mTLS files at their top level, and name what is missing.
func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	certs := filepath.Join("..", "..", "certs", "dev")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := `"hub": "127.0.0.1:1", "cert": "` + certs + `/police-gb.crt", "key": "` + certs + `/police-gb.key", "ca": "` + certs + `/ca.crt"`
	agency := write("agency.json", `{`+files+`, "agency": "police-gb", "keyserver": "127.0.0.1:2", "state_dir": "`+dir+`/state"}`)
	c, err := (&identityFlags{config: agency}).client(env{stdout: os.Stdout, stderr: os.Stderr}, true)
	if err != nil {
		t.Fatalf("agency config: %v", err)
	}
	c.Close()
	auditor := write("auditor.json", `{`+strings.ReplaceAll(files, "police-gb", "auditor")+`, "verifier_key": "x"}`)
	target, err := (&auditorFlags{config: auditor}).load()
	if err != nil || target.hub != "127.0.0.1:1" {
		t.Fatalf("auditor config: %+v, %v", target, err)
	}
	missing := write("missing.json", `{"hub": "127.0.0.1:1"}`)
	if _, err := (&auditorFlags{config: missing}).load(); err == nil || !strings.Contains(err.Error(), `"cert" is required`) {
		t.Fatalf("missing cert: %v", err)
	}
}
