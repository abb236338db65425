package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// VaultOPRF is a KeySource reading OPRF keys from a KV version 2 secret.
// Each version of the secret holds one key, as the key file's JSON fields
// ({"suite", "key_id", "private_key"}) in the version's data, and is one
// epoch: rotating the key means writing a new version (WriteOPRFKey).
type VaultOPRF struct {
	v           *Vault
	mount, path string
	grace       time.Duration
	now         func() time.Time // tests move the clock
}

// OPRFSource returns the KeySource for the KV v2 secret at path in the KV
// mount mount, such as "secret" and "veilmatch/oprf". grace is how long a
// key stays usable after the next version replaced it, so that lists
// published under it keep matching; zero serves only the newest key.
func (v *Vault) OPRFSource(mount, path string, grace time.Duration) *VaultOPRF {
	return &VaultOPRF{v: v, mount: mount, path: path, grace: max(grace, 0), now: time.Now}
}

// String names the secret and the grace period.
func (s *VaultOPRF) String() string {
	return fmt.Sprintf("keys.VaultOPRF(%s at %s, grace %s)", s.dataPath(), s.v.addr, s.grace)
}

// dataPath and metadataPath are the API paths, as policies name them.
func (s *VaultOPRF) dataPath() string     { return s.mount + "/data/" + s.path }
func (s *VaultOPRF) metadataPath() string { return s.mount + "/metadata/" + s.path }

// Keys reads the secret's metadata and returns the key of the newest
// version, then the keys of the earlier versions whose successor was
// written less than the grace period ago, newest first. Deleted and
// destroyed earlier versions are skipped; a deleted or destroyed newest
// version is an error, as is a key id held by two versions.
func (s *VaultOPRF) Keys(ctx context.Context) ([]*oprf.PrivateKey, error) {
	kv := s.v.client.KVv2(s.mount)
	var md *api.KVMetadata
	err := s.v.do(ctx, "read", s.metadataPath(), func(ctx context.Context) (err error) {
		md, err = kv.GetMetadata(ctx, s.path)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("keys: no OPRF key in vault at %s (write one with `veilmatch keyserver init-key --vault %s/%s`): %w",
			s.dataPath(), s.mount, s.path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: OPRF keys: %w", err)
	}
	now := s.now()
	meta := func(n int) (api.KVVersionMetadata, bool) {
		m, ok := md.Versions[strconv.Itoa(n)]
		return m, ok
	}
	live := func(m api.KVVersionMetadata) bool {
		return !m.Destroyed && (m.DeletionTime.IsZero() || m.DeletionTime.After(now))
	}

	current := md.CurrentVersion
	if m, ok := meta(current); !ok || !live(m) {
		return nil, fmt.Errorf("keys: OPRF key in vault at %s: current version %d is deleted or destroyed; undelete it or write a new key",
			s.dataPath(), current)
	}
	versions := []int{current}
	for n := current - 1; n > 0; n-- {
		next, ok := meta(n + 1)
		if !ok || now.Sub(next.CreatedTime) >= s.grace {
			break // versions only get older from here
		}
		m, ok := meta(n)
		if !ok {
			break // pruned by max_versions
		}
		if live(m) {
			versions = append(versions, n)
		}
	}

	keys := make([]*oprf.PrivateKey, 0, len(versions))
	holder := map[string]int{} // key id → version
	for _, n := range versions {
		k, err := s.readVersion(ctx, kv, n)
		if err != nil {
			return nil, err
		}
		if prev, dup := holder[k.KeyID()]; dup {
			if supersedes(keys[len(keys)-1], k) {
				continue // a share made from it by a split or a resharing retires it at once
			}
			return nil, fmt.Errorf("keys: OPRF key in vault at %s: versions %d and %d both hold key id %q; each version must have its own key id",
				s.dataPath(), prev, n, k.KeyID())
		}
		holder[k.KeyID()] = n
		keys = append(keys, k)
	}
	return keys, nil
}

// supersedes reports whether newer replaces older under the same key id:
// a share of the same group key, split from older (a whole key) or
// reshared from it (an older generation). Tokens do not change, and the
// key it replaces must evaluate no more.
func supersedes(newer, older *oprf.PrivateKey) bool {
	_, ns, isShare := newer.Share()
	if !isShare || newer.KeyID() != older.KeyID() || !bytes.Equal(newer.Public().Bytes, older.Public().Bytes) {
		return false
	}
	_, oldSet, wasShare := older.Share()
	return !wasShare || oldSet.Generation < ns.Generation
}

// readVersion reads and parses version n of the secret.
func (s *VaultOPRF) readVersion(ctx context.Context, kv *api.KVv2, n int) (*oprf.PrivateKey, error) {
	var sec *api.KVSecret
	err := s.v.do(ctx, "read", s.dataPath(), func(ctx context.Context) (err error) {
		sec, err = kv.GetVersion(ctx, s.path, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: OPRF key version %d: %w", n, err)
	}
	return parseKVKey(sec, s.dataPath(), n)
}

// parseKVKey parses the key in a KV version's data. Errors never include
// key material.
func parseKVKey(sec *api.KVSecret, path string, n int) (*oprf.PrivateKey, error) {
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("keys: OPRF key in vault at %s version %d: deleted or destroyed", path, n)
	}
	data, err := json.Marshal(sec.Data)
	if err != nil {
		return nil, fmt.Errorf("keys: OPRF key in vault at %s version %d: %w", path, n, err)
	}
	k, err := oprf.ParseKey(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("keys: OPRF key in vault at %s version %d: %w", path, n, err)
	}
	return k, nil
}

// WriteOPRFKey writes k as a new version of the KV v2 secret at path in
// mount and returns the version number. It uses check-and-set with the
// current version (0 for a new secret), so of two concurrent rotations one
// fails with ErrConflict instead of silently replacing the other. It
// refuses a key whose id a kept version already holds, unless it is a
// share that supersedes that version (a split or resharing of its key,
// whose tokens are the same; the version it replaces is no longer
// served). The newest live
// version's key endorses k (oprf.EndorseKey), so that clients and the hub
// that trust it trust k; with none, k is written as it is. The key goes
// straight from memory to Vault.
func (v *Vault) WriteOPRFKey(ctx context.Context, mount, path string, k *oprf.PrivateKey) (version int, err error) {
	s := v.OPRFSource(mount, path, 0)
	kv := v.client.KVv2(mount)
	var md *api.KVMetadata
	err = v.do(ctx, "read", s.metadataPath(), func(ctx context.Context) (err error) {
		md, err = kv.GetMetadata(ctx, path)
		return err
	})
	cas := 0
	var newest *oprf.PrivateKey
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return 0, fmt.Errorf("keys: write OPRF key: %w", err)
	default:
		cas = md.CurrentVersion
		for n := cas; n > 0; n-- {
			m, ok := md.Versions[strconv.Itoa(n)]
			if !ok {
				break
			}
			if m.Destroyed || !m.DeletionTime.IsZero() {
				continue
			}
			old, err := s.readVersion(ctx, kv, n)
			if err != nil {
				return 0, fmt.Errorf("keys: write OPRF key: %w", err)
			}
			if old.KeyID() == k.KeyID() && !supersedes(k, old) {
				return 0, fmt.Errorf("keys: write OPRF key: version %d of %s already holds key id %q; a new key needs a new id",
					n, s.dataPath(), k.KeyID())
			}
			if newest == nil {
				newest = old
			}
		}
	}
	if newest != nil && !supersedes(k, newest) {
		if k, err = oprf.EndorseKey(newest, k); err != nil {
			return 0, fmt.Errorf("keys: write OPRF key: endorse it with key %s: %w", newest.KeyID(), err)
		}
	}
	return v.writeOPRFKey(ctx, mount, path, k, cas)
}

// writeOPRFKey writes k with check-and-set version cas.
func (v *Vault) writeOPRFKey(ctx context.Context, mount, path string, k *oprf.PrivateKey, cas int) (int, error) {
	data, err := oprf.MarshalKey(k)
	if err != nil {
		return 0, fmt.Errorf("keys: write OPRF key: %w", err)
	}
	var fields map[string]any
	err = json.Unmarshal(data, &fields)
	clear(data)
	if err != nil {
		return 0, fmt.Errorf("keys: write OPRF key: %w", err)
	}
	var sec *api.KVSecret
	dataPath := mount + "/data/" + path
	err = v.do(ctx, "write", dataPath, func(ctx context.Context) (err error) {
		sec, err = v.client.KVv2(mount).Put(ctx, path, fields, api.WithCheckAndSet(cas))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("keys: write OPRF key: %w", err)
	}
	if sec == nil || sec.VersionMetadata == nil {
		return 0, fmt.Errorf("keys: write OPRF key: vault at %s returned no version for %s", v.addr, dataPath)
	}
	v.log.Info("OPRF key written to vault", "path", dataPath, "version", sec.VersionMetadata.Version, "key_id", k.KeyID())
	return sec.VersionMetadata.Version, nil
}
