package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"testing"
)

// TestVersion: a version stamped with -ldflags "-X main.buildVersion=…"
// comes first; unstamped, the build information still names something.
func TestVersion(t *testing.T) {
	versionLine := func() string {
		var out bytes.Buffer
		if err := cmdVersion(context.Background(), env{stdout: &out}, nil); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got := versionLine(); !regexp.MustCompile(`^veilmatch \S+( \S+)* go1\.\d+`).MatchString(got) {
		t.Errorf("unstamped: %q, want veilmatch VERSION… GOVERSION", got)
	}
	defer func(v string) { buildVersion = v }(buildVersion)
	buildVersion = "v1.2.3"
	if got := versionLine(); !regexp.MustCompile(`^veilmatch v1\.2\.3 (\S+ )?go1\.\d+`).MatchString(got) {
		t.Errorf("stamped v1.2.3: %q", got)
	}
}

// TestAuditVerifyCommand: the dev banner omits --verifier-key-file only where
// 'audit verify --as' looks by default.
func TestAuditVerifyCommand(t *testing.T) {
	if got, want := auditVerifyCommand(filepath.Join(".veilmatch-dev", "hub", "checkpoint.pub")), "veilmatch audit verify --as auditor"; got != want {
		t.Errorf("default dir: %q, want %q", got, want)
	}
	keyFile := filepath.Join(t.TempDir(), "hub", "checkpoint.pub")
	if got, want := auditVerifyCommand(keyFile), "veilmatch audit verify --as auditor --verifier-key-file "+keyFile; got != want {
		t.Errorf("--data elsewhere: %q, want %q", got, want)
	}
}
