package policy_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOPACLI runs the bundle's Rego tests with the real opa command at the
// version go.mod pins, built from the module cache, so the same tests pass
// both through the Go API and through `opa test policy/`.
func TestOPACLI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "opa")
	build := exec.Command("go", "build", "-o", bin, "github.com/open-policy-agent/opa") // a tool in go.mod
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the opa CLI: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "test", ".", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("opa test policy/: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS:") || strings.Contains(string(out), "FAIL") {
		t.Fatalf("opa test output:\n%s", out)
	}
	t.Logf("%s", out[strings.LastIndex(string(out), "PASS:"):])
}
