package keyserver_test

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/internal/servertest"
	"github.com/veilmatch/veilmatch/server/keyserver"
)

// TestReloadingTLSKeepsKinds: with certificates that reload (picked per
// handshake), the key server still refuses every identity but agencies at
// the handshake.
func TestReloadingTLSKeepsKinds(t *testing.T) {
	r, err := mtls.NewReloader(mtls.DevFiles("../../certs/dev", "keyserver"))
	if err != nil {
		t.Fatal(err)
	}
	ks := servertest.KeyServer(t, keyserver.Config{TLS: r.ServerConfig()})
	check := func(party string) error {
		conn := servertest.Dial(t, ks.Addr().String(), servertest.ClientTLS(t, party))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check("police-gb"); err != nil {
		t.Fatalf("agency: %v", err)
	}
	if check("auditor") == nil {
		t.Fatal("auditor connected to the key server")
	}
}
