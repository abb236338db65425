// Package pgtest finds the PostgreSQL server the tests run against.
package pgtest

import (
	"os"
	"testing"
)

// Env names the environment variable with the URL of the PostgreSQL server
// the tests run against.
const Env = "VEILMATCH_TEST_POSTGRES"

// Server returns the test server's URL. Without one it skips the test, or
// fails it in CI (CI set), where .ci/run starts a server. use says what
// the test does with it, for the message.
func Server(tb testing.TB, use string) string {
	tb.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		hint := Env + " must point at a PostgreSQL server in CI (a URL such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; " + use + ")"
		if os.Getenv("CI") != "" {
			tb.Fatal(hint)
		}
		tb.Skip(hint)
	}
	return dsn
}
