package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// VaultConfig configures the connection to HashiCorp Vault. Unset fields
// fall back to the vault CLI's environment variables (VAULT_ADDR,
// VAULT_CACERT, VAULT_NAMESPACE, VAULT_TOKEN, VAULT_MAX_RETRIES, …).
type VaultConfig struct {
	// Address is Vault's URL, such as https://vault.example:8200; default
	// VAULT_ADDR.
	Address string
	// CACert is a PEM file of the CA certificates to trust for Vault's TLS
	// certificate; default VAULT_CACERT, else the system roots.
	CACert string
	// Namespace is the Vault Enterprise namespace sent with every request;
	// default VAULT_NAMESPACE.
	Namespace string
	// Token is the Vault token for token auth; default VAULT_TOKEN. Prefer
	// the environment or AppRole to a token in a flag.
	Token string
	// RoleID selects AppRole auth: the role id, with the secret id read from
	// SecretIDFile (mode 0600 or stricter) at every login.
	RoleID string
	// SecretIDFile is the file holding the AppRole secret id.
	SecretIDFile string
	// MaxRetries is how many times a request failing with a 5xx status or a
	// connection error is retried: 0 means the client default (2, or
	// VAULT_MAX_RETRIES), a negative value means never.
	MaxRetries int
	// Logger receives connection and renewal events; nil means
	// slog.Default(). Tokens, secret ids and keys are never logged.
	Logger *slog.Logger
}

// validate names the first inconsistent setting.
func (c VaultConfig) validate() error {
	switch {
	case c.RoleID != "" && c.SecretIDFile == "":
		return errors.New("keys: vault config: AppRole needs a secret id file as well as a role id")
	case c.RoleID == "" && c.SecretIDFile != "":
		return errors.New("keys: vault config: AppRole needs a role id as well as a secret id file")
	case c.RoleID != "" && c.Token != "":
		return errors.New("keys: vault config: choose token or AppRole auth, not both")
	}
	return nil
}

// Vault is a logged-in Vault client. A background goroutine keeps its token
// alive: it renews the token with the client's LifetimeWatcher and, with
// AppRole, logs in again when the token cannot be renewed any more or has
// expired (for example after Vault was down for longer than its TTL).
type Vault struct {
	client  *api.Client
	addr    string
	log     *slog.Logger
	appRole *approle.AppRoleAuth // nil with token auth

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the maintenance goroutine returns
	once   sync.Once

	loginMu sync.Mutex
	kick    chan struct{} // a new token was obtained: restart renewal

	mu        sync.Mutex
	auth      *api.Secret // the token to renew; nil when there is nothing to renew
	lastLogin time.Time
	lastErr   error
}

// opTimeout bounds Vault calls made without a caller's context.
const opTimeout = 30 * time.Second

// DialVault connects to Vault and logs in: with AppRole when cfg.RoleID is
// set, else with the token. It refuses, naming Vault's address and the
// cause, when Vault is unreachable, sealed, or rejects the credentials.
//
// Token renewal and re-login run in the background until Close; they are
// not bound to ctx, which only bounds the dial, so a dial timeout does not
// stop them.
func DialVault(ctx context.Context, cfg VaultConfig) (*Vault, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	conf := api.DefaultConfig()
	if conf.Error != nil {
		return nil, fmt.Errorf("keys: vault config: %w", conf.Error)
	}
	if cfg.Address != "" {
		conf.Address = cfg.Address
	}
	if cfg.CACert != "" {
		if err := conf.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("keys: vault CA certificate %s: %w", cfg.CACert, err)
		}
	}
	switch {
	case cfg.MaxRetries < 0:
		conf.MaxRetries = 0
	case cfg.MaxRetries > 0:
		conf.MaxRetries = cfg.MaxRetries
	}
	client, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("keys: vault client for %s: %w", conf.Address, err)
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	v := &Vault{
		client: client,
		addr:   client.Address(),
		log:    log.With("vault", client.Address()),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}

	health, err := client.Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		return nil, fmt.Errorf("keys: vault unreachable: %w", v.wrap("read", "sys/health", err))
	case !health.Initialized:
		return nil, fmt.Errorf("keys: vault at %s is not initialized", v.addr)
	case health.Sealed:
		return nil, fmt.Errorf("keys: vault at %s is sealed", v.addr)
	}

	if cfg.RoleID != "" {
		if err := checkSecretIDFile(cfg.SecretIDFile); err != nil {
			return nil, err
		}
		a, err := approle.NewAppRoleAuth(cfg.RoleID, &approle.SecretID{FromFile: cfg.SecretIDFile})
		if err != nil {
			return nil, fmt.Errorf("keys: vault AppRole: %w", err)
		}
		v.appRole = a
		if err := v.login(ctx); err != nil {
			return nil, err
		}
		<-v.kick // the goroutine starts with this token anyway
	} else if err := v.useToken(ctx, cfg.Token); err != nil {
		return nil, err
	}

	v.ctx, v.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go v.maintain()
	return v, nil
}

// checkSecretIDFile refuses a missing secret id file or one that other
// users may read.
func checkSecretIDFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("keys: vault AppRole secret id file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("keys: vault AppRole secret id file %s: mode %04o lets other users read it; chmod 600 it", path, st.Mode().Perm())
	}
	return nil
}

// useToken checks the token (cfg.Token, else VAULT_TOKEN) with lookup-self
// and arranges its renewal.
func (v *Vault) useToken(ctx context.Context, tok string) error {
	if tok == "" {
		tok = v.client.Token() // VAULT_TOKEN
	}
	if tok == "" {
		return fmt.Errorf("keys: vault at %s: no token: set VAULT_TOKEN or configure AppRole (role id and secret id file)", v.addr)
	}
	v.client.SetToken(tok)
	sec, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err == nil && (sec == nil || sec.Data == nil) {
		err = errors.New("empty response")
	}
	if err != nil {
		return fmt.Errorf("keys: token rejected: %w", v.wrap("read", "auth/token/lookup-self", err))
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	policies, _ := sec.TokenPolicies()
	v.log.Info("vault token accepted", "ttl", ttl, "renewable", renewable, "policies", policies)
	if ttl > 0 && renewable {
		v.setAuth(&api.Secret{Auth: &api.SecretAuth{ClientToken: tok, Renewable: true, LeaseDuration: int(ttl.Seconds())}})
	} else if ttl > 0 {
		v.log.Warn("vault token is not renewable; give the service a new token before it expires", "expires_in", ttl)
	}
	return nil
}

// login logs in with AppRole, which also sets the client's token, and
// restarts renewal with the new token.
func (v *Vault) login(ctx context.Context) error {
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	sec, err := v.client.Auth().Login(ctx, v.appRole)
	if err != nil {
		return fmt.Errorf("keys: AppRole login: %w", v.wrap("login", "auth/approle/login", err))
	}
	v.mu.Lock()
	v.lastLogin = time.Now()
	v.auth = sec
	if sec.Auth.LeaseDuration <= 0 {
		v.auth = nil // a token without TTL never expires: nothing to renew
	}
	v.mu.Unlock()
	select {
	case v.kick <- struct{}{}:
	default:
	}
	v.log.Info("vault AppRole login", "ttl", time.Duration(sec.Auth.LeaseDuration)*time.Second,
		"renewable", sec.Auth.Renewable, "policies", sec.Auth.Policies)
	return nil
}

func (v *Vault) setAuth(sec *api.Secret) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.auth = sec
}

func (v *Vault) currentAuth() *api.Secret {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.auth
}

// setErr records the outcome of a Vault call for LastError: only failures
// that say Vault is unavailable count, not refusals such as 403 or 404.
func (v *Vault) setErr(err error) {
	var re *api.ResponseError
	if errors.Is(err, api.ErrSecretNotFound) || (errors.As(err, &re) && re.StatusCode < 500) {
		err = nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lastErr = err
}

// LastError returns why the most recent Vault call failed if Vault was
// unavailable (unreachable, sealed, 5xx), or nil once a call got an
// answer: a health signal for the services.
func (v *Vault) LastError() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lastErr
}

// Address returns Vault's address.
func (v *Vault) Address() string { return v.addr }

// String names Vault's address, never the token.
func (v *Vault) String() string { return "keys.Vault(" + v.addr + ")" }

// Close stops token renewal. Calls made after Close fail.
func (v *Vault) Close() error {
	v.once.Do(func() {
		v.cancel()
		<-v.done
	})
	return nil
}

// maintain keeps the token alive until Close.
func (v *Vault) maintain() {
	defer close(v.done)
	for v.ctx.Err() == nil {
		sec := v.currentAuth()
		if sec == nil {
			// Nothing to renew (a token without TTL, or one past help):
			// wait for a login.
			select {
			case <-v.ctx.Done():
			case <-v.kick:
			}
			continue
		}
		kicked, err := v.watch(sec)
		switch {
		case kicked || v.ctx.Err() != nil:
		case v.appRole != nil:
			if err != nil {
				v.log.Warn("vault token renewal stopped; logging in again", "error", cause(err))
			} else {
				v.log.Info("vault token renewal stopped (max TTL reached or Vault unreachable); logging in again")
			}
			v.relogin()
		default:
			v.recheckToken(sec)
		}
	}
}

// watch renews sec's token until renewal stops (with the watcher's error,
// nil when the token reached its max TTL) or a new token arrives (kicked).
func (v *Vault) watch(sec *api.Secret) (kicked bool, err error) {
	w, err := v.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: sec})
	if err != nil {
		return false, err
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return false, nil
		case <-v.kick:
			return true, nil
		case r := <-w.RenewCh():
			if r.Secret != nil && r.Secret.Auth != nil {
				v.log.Debug("vault token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
			}
		case err := <-w.DoneCh():
			return false, err
		}
	}
}

// minLoginInterval spaces logins, should Vault hand out tokens that expire
// at once.
const minLoginInterval = time.Second

// relogin logs in with AppRole, retrying with backoff until it succeeds or
// Close.
func (v *Vault) relogin() {
	v.mu.Lock()
	wait := minLoginInterval - time.Since(v.lastLogin)
	v.mu.Unlock()
	if wait > 0 && !sleep(v.ctx, wait) {
		return
	}
	delay := 500 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(v.ctx, opTimeout)
		err := v.login(ctx)
		cancel()
		v.setErr(err)
		if err == nil || v.ctx.Err() != nil {
			return
		}
		v.log.Warn("vault login failed; retrying", "in", delay, "error", err)
		if !sleep(v.ctx, delay) {
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// recheckToken decides what to do when renewal of a static token (prev)
// stopped: renewal stops both when Vault was unreachable for too long and
// when the token reached its max TTL. It asks Vault: if a renewal still
// extends the token, renewal resumes; otherwise it warns, and reports the
// expiry when it comes.
func (v *Vault) recheckToken(prev *api.Secret) {
	delay := 500 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(v.ctx, opTimeout)
		renewed, ttl, err := v.tryRenew(ctx)
		cancel()
		if v.ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && isStatus(err, http.StatusForbidden):
			v.setAuth(nil)
			v.log.Error("vault token expired or was revoked; Vault calls will fail until the service gets a new token")
			return
		case err != nil:
			v.log.Warn("vault unreachable; checking the token again", "in", delay, "error", cause(err))
			if !sleep(v.ctx, delay) {
				return
			}
			delay = min(2*delay, 30*time.Second)
			continue
		case renewed != nil && renewed.Auth.LeaseDuration >= prev.Auth.LeaseDuration:
			v.setAuth(renewed) // renewal extends it again: keep renewing
			return
		}
		v.setAuth(nil)
		v.log.Warn("vault token cannot be renewed further; give the service a new token before it expires", "expires_in", ttl)
		if ttl > 0 && sleep(v.ctx, ttl) {
			v.log.Error("vault token expired; Vault calls will fail until the service gets a new token")
		}
		return
	}
}

// tryRenew looks the token up and, if it is renewable, renews it. It
// returns the renewal (nil if the token is not renewable), the token's TTL,
// and an error only when Vault did not answer or refused the token.
func (v *Vault) tryRenew(ctx context.Context) (*api.Secret, time.Duration, error) {
	sec, err := v.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, 0, err
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	if !renewable || ttl <= 0 {
		return nil, ttl, nil
	}
	r, err := v.client.Auth().Token().RenewSelfWithContext(ctx, 0)
	var re *api.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode < 500 && re.StatusCode != http.StatusForbidden:
		return nil, ttl, nil // not renewable after all
	case err != nil:
		return nil, ttl, err
	case r == nil || r.Auth == nil:
		return nil, ttl, nil
	}
	return r, time.Duration(r.Auth.LeaseDuration) * time.Second, nil
}

// do runs one Vault call. With AppRole, a permission denied caused by an
// expired token (Vault was down past the token's TTL, or the host slept)
// triggers one login and one retry. Errors name op and path.
func (v *Vault) do(ctx context.Context, op, path string, fn func(context.Context) error) error {
	if v.ctx.Err() != nil {
		return fmt.Errorf("keys: vault at %s: %s %s: client closed", v.addr, op, path)
	}
	err := fn(ctx)
	if err != nil && v.appRole != nil && isStatus(err, http.StatusForbidden) {
		if _, lerr := v.client.Auth().Token().LookupSelfWithContext(ctx); isStatus(lerr, http.StatusForbidden) {
			v.log.Info("vault token no longer valid; logging in again")
			if lerr := v.login(ctx); lerr == nil {
				err = fn(ctx)
			}
		}
	}
	v.setErr(err)
	if err != nil {
		return v.wrap(op, path, err)
	}
	return nil
}

// capabilityHint names the policy capabilities an operation needs.
var capabilityHint = map[string]string{
	"read":  `"read"`,
	"write": `"create" and "update"`,
	"sign":  `"update"`,
	"login": `none (check the auth mount)`,
}

// wrap turns a vault/api error into one that names Vault, the operation and
// the path, without the request URL's query or any token.
func (v *Vault) wrap(op, path string, err error) error {
	var re *api.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("vault at %s: %s %s: %w (the token's policies must grant %s on %s)",
			v.addr, op, path, ErrPermissionDenied, capabilityHint[op], path)
	case errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set"):
		return fmt.Errorf("vault at %s: %s %s: %w: %s", v.addr, op, path, ErrConflict, strings.Join(re.Errors, "; "))
	case errors.As(err, &re):
		return fmt.Errorf("vault at %s: %s %s: HTTP %d: %s", v.addr, op, path, re.StatusCode, strings.Join(re.Errors, "; "))
	case errors.Is(err, api.ErrSecretNotFound):
		return fmt.Errorf("vault at %s: %s %s: %w", v.addr, op, path, ErrNotFound)
	}
	return fmt.Errorf("vault at %s: %s %s: %w", v.addr, op, path, cause(err))
}

// cause strips the request URL from a transport error: the address is
// named separately and the URL may carry query parameters.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// isStatus reports whether err is a Vault response with the given status.
func isStatus(err error, status int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

// sleep waits for d or until ctx is done, and reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
