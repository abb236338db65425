package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/veilmatch/veilmatch/crypto/mtls"
	"github.com/veilmatch/veilmatch/server/metrics"
)

// serverTLSFlags are the TLS flags of the key server and the hub.
type serverTLSFlags struct {
	cert, key, clientCA, devCerts string
	// creds are the files' credentials, loaded on first use.
	creds *mtls.Reloader
}

func (f *serverTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "cert", "", "server certificate `FILE` (PEM; reloaded on SIGHUP, as --key and --client-ca are)")
	fs.StringVar(&f.key, "key", "", "server private key `FILE` (PEM)")
	fs.StringVar(&f.clientCA, "client-ca", "", "CA `FILE` that client certificates must chain to")
	fs.StringVar(&f.devCerts, "dev-certs", "", "take all three from a `DIR` laid out like certs/dev (development only)")
}

// load builds the server's mTLS configuration. name is the server's file
// name in a development directory ("hub", "keyserver"). Its handshakes use
// the files loaded last: see watch.
func (f *serverTLSFlags) load(name string, warn io.Writer) (*tls.Config, error) {
	creds, err := f.credentials(name, warn)
	if err != nil {
		return nil, err
	}
	return creds.ServerConfig(), nil
}

// client builds the server's mTLS client configuration from the same
// material, for calls to another service.
func (f *serverTLSFlags) client(name string) (*tls.Config, error) {
	creds, err := f.credentials(name, io.Discard)
	if err != nil {
		return nil, err
	}
	return creds.ClientConfig(""), nil
}

// credentials loads the certificate, key and client CAs the flags name, the
// first time it is called, warning on warn about development certificates.
func (f *serverTLSFlags) credentials(name string, warn io.Writer) (*mtls.Reloader, error) {
	if f.creds != nil {
		return f.creds, nil
	}
	var files mtls.Files
	switch {
	case f.devCerts != "":
		if f.cert != "" || f.key != "" || f.clientCA != "" {
			return nil, usagef("use either --dev-certs or --cert/--key/--client-ca", "--dev-certs cannot be combined with --cert, --key or --client-ca")
		}
		fmt.Fprintf(warn, "veilmatch: WARNING: %s runs on DEVELOPMENT certificates from %s; never use them in production\n", name, f.devCerts)
		files = mtls.DevFiles(f.devCerts, name)
	case f.cert != "" && f.key != "" && f.clientCA != "":
		files = mtls.Files{Cert: f.cert, Key: f.key, CA: f.clientCA}
	default:
		return nil, usagef("for a quick local run use --dev-certs certs/dev", "TLS material is required: pass --cert, --key and --client-ca")
	}
	creds, err := mtls.NewReloader(files)
	if err != nil {
		return nil, err
	}
	f.creds = creds
	return creds, nil
}

// watch, called after load, reloads the certificate, key and client CAs on
// SIGHUP until ctx is done, and exports the served certificate's expiry on
// m (if not nil) as veilmatch_tls_certificate_expiry_seconds{role}.
func (f *serverTLSFlags) watch(ctx context.Context, role string, m *metrics.Metrics) {
	m.CertificateExpiry(role, f.creds.NotAfter)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		reloadOn(ctx, hup, f.creds, role)
	}()
}

// reloadOn reloads creds each time sig delivers, until ctx is done. A
// refused reload leaves the credentials in force, and is logged.
func reloadOn(ctx context.Context, sig <-chan os.Signal, creds *mtls.Reloader, role string) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if err := creds.Reload(); err != nil {
				slog.Error("TLS reload refused; the previous certificate and client CAs stay in force", "role", role, "error", err)
			} else {
				slog.Info("TLS certificate and client CAs reloaded", "role", role, "not_after", creds.NotAfter().UTC())
			}
		}
	}
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
