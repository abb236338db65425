package main

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/veilmatch/veilmatch/server/keys"
)

// vaultFlags are the HashiCorp Vault connection flags of the key server and
// the hub. The token is read from VAULT_TOKEN only, never from a flag.
type vaultFlags struct {
	addr, cacert, namespace, roleID, secretIDFile string
}

func (f *vaultFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "vault-addr", os.Getenv("VAULT_ADDR"), "Vault `URL` (default $VAULT_ADDR)")
	fs.StringVar(&f.cacert, "vault-cacert", os.Getenv("VAULT_CACERT"), "CA `FILE` for Vault's TLS certificate (default $VAULT_CACERT)")
	fs.StringVar(&f.namespace, "vault-namespace", os.Getenv("VAULT_NAMESPACE"), "Vault namespace (default $VAULT_NAMESPACE)")
	fs.StringVar(&f.roleID, "vault-role-id", "", "AppRole role `ID` (otherwise the token in $VAULT_TOKEN)")
	fs.StringVar(&f.secretIDFile, "vault-secret-id-file", "", "`FILE` holding the AppRole secret id (mode 0600)")
}

// dial connects and logs in; it refuses to go on if Vault cannot be
// reached, naming the address.
func (f *vaultFlags) dial(ctx context.Context) (*keys.Vault, error) {
	if f.addr == "" {
		return nil, usagef("set VAULT_ADDR or --vault-addr", "a Vault address is required")
	}
	v, err := keys.DialVault(ctx, keys.VaultConfig{Address: f.addr, CACert: f.cacert, Namespace: f.namespace,
		RoleID: f.roleID, SecretIDFile: f.secretIDFile, Logger: slog.Default()})
	if err != nil {
		return nil, withHint(err, "check VAULT_ADDR, VAULT_TOKEN or the AppRole flags, and that the Vault policy grants the path")
	}
	return v, nil
}
