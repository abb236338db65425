// Package servertest starts real veilmatch servers on 127.0.0.1:0 with real
// mTLS for tests, and dials them as any of the development parties.
package servertest

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// ServerTLS returns the mTLS server configuration of a development server
// ("hub" or "keyserver") from the committed certificates.
func ServerTLS(t testing.TB, name string) *tls.Config {
	t.Helper()
	cfg, err := mtls.ServerConfigFS(certs.DevFS, mtls.DevFiles(".", name))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ClientTLS returns the mTLS client configuration of a development party.
func ClientTLS(t testing.TB, party string) *tls.Config {
	t.Helper()
	cfg, err := mtls.ClientConfigFS(certs.DevFS, mtls.DevFiles(".", party), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Dial connects to addr with cfg and closes the connection at test end.
func Dial(t testing.TB, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Serve runs serve in the background until the test ends, then cancels it
// and waits for it to return.
func Serve(t testing.TB, serve func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("server did not stop within 30s")
		}
	})
}
