package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/veilmatch/veilmatch/certs"
	"github.com/veilmatch/veilmatch/crypto/mtls"
)

// certsCommands run a private CA: one per trust domain, issuing the
// certificates of servers, agencies and auditors with their SPIFFE IDs.
var certsCommands = &group{
	name: "certs",
	cmds: []subcommand{
		{"init-ca", cmdCertsInitCA, "\tcreate a private CA for a trust domain: ca.crt and ca.key"},
		{"issue", cmdCertsIssue, "\tissue a server, agency or auditor certificate with its SPIFFE ID"},
	},
	footer: `
ca.key can sign any identity of the trust domain: keep it offline, and give
servers and parties only ca.crt (--client-ca, or "ca" in a --config file).

Example:
  veilmatch certs init-ca --out ca --trust-domain example.org
  veilmatch certs issue --ca-dir ca --kind server --id hub --dns hub.example.org --out hub
  veilmatch certs issue --ca-dir ca --kind agency --id police-fr --out police-fr
`,
}

// Default validity, in days, of a CA and of the certificates it issues.
const (
	defaultCADays   = 3650
	defaultLeafDays = 365
	maxDays         = 36500
)

// backdate is how far before now certificates become valid, so that a
// peer whose clock is a little behind accepts them.
const backdate = time.Hour

func cmdCertsInitCA(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "certs init-ca", "certs init-ca --out DIR [--trust-domain D] [--days N]",
		"veilmatch certs init-ca --out /etc/veilmatch/ca --trust-domain example.org")
	out := fs.String("out", "", "`DIR` to write ca.crt and ca.key (mode 0600) to; never overwritten")
	trustDomain := fs.String("trust-domain", certs.DefaultTrustDomain, "trust `DOMAIN` of every SPIFFE ID the CA issues")
	days := fs.Int("days", defaultCADays, "validity in `DAYS`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *out == "":
		return usagef("", "--out is required")
	case !mtls.ValidTrustDomain(*trustDomain):
		return usagef("a trust domain is 1 to 255 lower-case letters, digits, '.', '-' and '_', such as example.org", "--trust-domain %q is not a valid trust domain", *trustDomain)
	case *days < 1 || *days > maxDays:
		return usagef("", "--days %d: want 1 to %d", *days, maxDays)
	}
	now := time.Now()
	ca, err := certs.NewCA(certs.CAOptions{TrustDomain: *trustDomain, NotBefore: now.Add(-backdate), NotAfter: now.AddDate(0, 0, *days)})
	if err != nil {
		return err
	}
	if err := saved(ca.Save(*out)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote CA of trust domain %s to %s and %s (mode 0600)\n", ca.TrustDomain, filepath.Join(*out, "ca.crt"), filepath.Join(*out, "ca.key"))
	describeCert(e.stdout, ca.Certificate)
	fmt.Fprintf(e.stdout, "issue with: veilmatch certs issue --ca-dir %s --kind server|agency|auditor --id ID --out DIR\n", *out)
	return nil
}

func cmdCertsIssue(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "certs issue", "certs issue --ca-dir DIR --kind server|agency|auditor --id ID --out DIR [--dns NAME]... [--ip IP]... [--days N]",
		"veilmatch certs issue --ca-dir /etc/veilmatch/ca --kind server --id hub --dns hub.example.org --out /etc/veilmatch/hub")
	caDir := fs.String("ca-dir", "", "`DIR` of the CA's ca.crt and ca.key (from 'veilmatch certs init-ca')")
	kind := fs.String("kind", "", "`KIND` of party: server, agency or auditor")
	id := fs.String("id", "", "`ID`, the last segment of the SPIFFE ID and the stem of the files' names")
	out := fs.String("out", "", "`DIR` to write ID.crt and ID.key (mode 0600) to; never overwritten")
	days := fs.Int("days", defaultLeafDays, "validity in `DAYS`, at most the CA's remaining validity")
	var dns stringList
	var ips ipList
	fs.Var(&dns, "dns", "DNS `NAME` clients dial the server by; repeatable (servers only; a server needs --dns or --ip)")
	fs.Var(&ips, "ip", "`IP` address clients dial the server by; repeatable (servers only)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := checkIssueFlags(*caDir, *kind, *id, *out, *days, len(dns)+len(ips)); err != nil {
		return err
	}
	ca, err := certs.LoadCA(*caDir)
	if err != nil {
		return err
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-backdate), now.AddDate(0, 0, *days)
	if notAfter.After(ca.Certificate.NotAfter) {
		return usagef(fmt.Sprintf("use --days %d or fewer, or a new CA", int(time.Until(ca.Certificate.NotAfter)/(24*time.Hour))),
			"--days %d: the certificate would outlive the CA, which expires at %s", *days, ca.Certificate.NotAfter.UTC().Format(time.RFC3339))
	}
	if notBefore.Before(ca.Certificate.NotBefore) {
		notBefore = ca.Certificate.NotBefore
	}
	leaf, err := ca.Issue(certs.Request{
		Party:       certs.Party{Kind: *kind, ID: *id},
		DNSNames:    dns,
		IPAddresses: ips,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
	})
	if err != nil {
		return err
	}
	if err := saved(leaf.Save(*out)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s (mode 0600)\n", filepath.Join(*out, *id+".crt"), filepath.Join(*out, *id+".key"))
	describeCert(e.stdout, leaf.Certificate)
	return nil
}

// checkIssueFlags checks the command line of 'certs issue', before it reads
// anything.
func checkIssueFlags(caDir, kind, id, out string, days, names int) error {
	switch {
	case caDir == "" || kind == "" || id == "" || out == "":
		return usagef("", "--ca-dir, --kind, --id and --out are required")
	case kind != mtls.KindServer && kind != mtls.KindAgency && kind != mtls.KindAuditor:
		return usagef("", "--kind must be server, agency or auditor, got %q", kind)
	case !mtls.ValidID(id):
		return usagef("an id is 1 to 63 lower-case letters, digits, '.', '-' and '_', starting with a letter or digit, such as police-fr",
			"--id %q is not a valid id", id)
	case days < 1 || days > maxDays:
		return usagef("", "--days %d: want 1 to %d", days, maxDays)
	case kind == mtls.KindServer && names == 0:
		return usagef("clients check the server's name: for example --dns hub.example.org, or --dns localhost --ip 127.0.0.1 on one machine",
			"a server certificate needs --dns or --ip")
	case kind != mtls.KindServer && names != 0:
		return usagef("", "--dns and --ip are for servers; %s certificates only identify their holder", kind)
	}
	return nil
}

// saved adds a hint to the error of a Save that found its files there.
func saved(err error) error {
	if errors.Is(err, fs.ErrExist) {
		return withHint(err, "move the old files away first, or choose another --out")
	}
	return err
}

// describeCert prints what an operator checks in a certificate: its
// subject, identity, usage, names, validity and SHA-256 fingerprint.
func describeCert(w io.Writer, c *x509.Certificate) {
	fmt.Fprintf(w, "subject      %s\n", c.Subject)
	for _, u := range c.URIs {
		if c.IsCA {
			fmt.Fprintf(w, "trust domain %s\n", u.Host)
		} else {
			fmt.Fprintf(w, "spiffe id    %s\n", u)
		}
	}
	if !c.IsCA {
		fmt.Fprintf(w, "usage        %s\n", usageOf(c))
	}
	if len(c.DNSNames) > 0 {
		fmt.Fprintf(w, "dns          %s\n", stringList(c.DNSNames))
	}
	if len(c.IPAddresses) > 0 {
		fmt.Fprintf(w, "ip           %s\n", ipList(c.IPAddresses))
	}
	fmt.Fprintf(w, "valid        %s to %s\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "sha256       %s\n", fingerprint(c))
}

// usageOf names a leaf's extended key usages.
func usageOf(c *x509.Certificate) string {
	var names []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			names = append(names, "server")
		case x509.ExtKeyUsageClientAuth:
			names = append(names, "client")
		default:
			names = append(names, fmt.Sprintf("other (%d)", u))
		}
	}
	return strings.Join(names, ", ")
}

// fingerprint returns the SHA-256 of c's DER encoding as colon-separated
// hex pairs, as 'openssl x509 -noout -fingerprint -sha256' prints it.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	pairs := make([]string, len(sum))
	for i, b := range sum {
		pairs[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(pairs, ":")
}

// stringList is a repeatable string flag.
type stringList []string

func (l stringList) String() string { return strings.Join(l, ", ") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty name")
	}
	*l = append(*l, v)
	return nil
}

// ipList is a repeatable IP address flag.
type ipList []net.IP

func (l ipList) String() string {
	ips := make([]string, len(l))
	for i, ip := range l {
		ips[i] = ip.String()
	}
	return strings.Join(ips, ", ")
}

func (l *ipList) Set(v string) error {
	ip := net.ParseIP(v)
	if ip == nil {
		return fmt.Errorf("%q is not an IP address", v)
	}
	*l = append(*l, ip)
	return nil
}
