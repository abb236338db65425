package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// serverTLSFlags are the TLS flags of the key server and the hub.
type serverTLSFlags struct {
	cert, key, clientCA, devCerts string
}

func (f *serverTLSFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "cert", "", "server certificate `FILE` (PEM)")
	fs.StringVar(&f.key, "key", "", "server private key `FILE` (PEM)")
	fs.StringVar(&f.clientCA, "client-ca", "", "CA `FILE` that client certificates must chain to")
	fs.StringVar(&f.devCerts, "dev-certs", "", "take all three from a `DIR` laid out like certs/dev (development only)")
}

// load builds the server's mTLS configuration. name is the server's file
// name in a development directory ("hub", "keyserver").
func (f *serverTLSFlags) load(name string, warn io.Writer) (*tls.Config, error) {
	switch {
	case f.devCerts != "":
		if f.cert != "" || f.key != "" || f.clientCA != "" {
			return nil, usagef("use either --dev-certs or --cert/--key/--client-ca", "--dev-certs cannot be combined with --cert, --key or --client-ca")
		}
		fmt.Fprintf(warn, "veilmatch: WARNING: %s runs on DEVELOPMENT certificates from %s; never use them in production\n", name, f.devCerts)
		return mtls.ServerConfig(mtls.DevFiles(f.devCerts, name))
	case f.cert != "" && f.key != "" && f.clientCA != "":
		return mtls.ServerConfig(mtls.Files{Cert: f.cert, Key: f.key, CA: f.clientCA})
	default:
		return nil, usagef("for a quick local run use --dev-certs certs/dev", "TLS material is required: pass --cert, --key and --client-ca")
	}
}

// client builds the server's mTLS client configuration from the same
// material, for calls to another service.
func (f *serverTLSFlags) client(name string) (*tls.Config, error) {
	if f.devCerts != "" {
		return mtls.ClientConfig(mtls.DevFiles(f.devCerts, name), "")
	}
	return mtls.ClientConfig(mtls.Files{Cert: f.cert, Key: f.key, CA: f.clientCA}, "")
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
