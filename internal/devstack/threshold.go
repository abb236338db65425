package devstack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/veilmatch/veilmatch/crypto/oprf"
)

// ShareFile is where each key server of a threshold stack keeps its
// share: Dir/keyserver-<i>/share.json.
const ShareFile = "share.json"

// shares returns the threshold key's shares: Threshold.Shares, the share
// files of an earlier start, or, on the first start, new ones made by a
// distributed key generation and written to the share files.
func (c *Config) shares() ([]*oprf.PrivateKey, error) {
	th := c.Threshold
	if th.T < 1 || th.T > th.N || th.N > oprf.MaxShares {
		return nil, fmt.Errorf("devstack: threshold %d-of-%d: want 1 ≤ t ≤ n ≤ %d", th.T, th.N, oprf.MaxShares)
	}
	if th.Shares != nil {
		if len(th.Shares) != th.N {
			return nil, fmt.Errorf("devstack: %d shares for a %d-of-%d key", len(th.Shares), th.T, th.N)
		}
		return th.Shares, nil
	}
	paths := make([]string, th.N)
	found := 0
	for i := range paths {
		paths[i] = filepath.Join(c.Dir, fmt.Sprintf("keyserver-%d", i+1), ShareFile)
		if _, err := os.Stat(paths[i]); err == nil {
			found++
		}
	}
	switch found {
	case th.N:
		return loadShares(paths, th.T)
	case 0:
	default:
		return nil, fmt.Errorf("devstack: %d of the %d share files exist in %s; remove the directory to start a new key", found, th.N, c.Dir)
	}
	shares, err := localDKG(oprf.NewKeyID(time.Now()), th.N, th.T)
	if err != nil {
		return nil, err
	}
	for i, sh := range shares {
		if err := os.MkdirAll(filepath.Dir(paths[i]), 0o700); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
		if err := oprf.WriteKeyFile(paths[i], sh); err != nil {
			return nil, err
		}
	}
	return shares, nil
}

// loadShares reads the share files of an earlier start, which must be the
// shares 1 to n of one t-of-n key set.
func loadShares(paths []string, t int) ([]*oprf.PrivateKey, error) {
	shares := make([]*oprf.PrivateKey, len(paths))
	var first oprf.KeySet
	for i, p := range paths {
		sh, err := oprf.LoadKeyFile(p)
		if err != nil {
			return nil, err
		}
		idx, set, ok := sh.Share()
		switch {
		case !ok || idx != i+1:
			return nil, fmt.Errorf("devstack: %s is not share %d of a threshold key", p, i+1)
		case i == 0:
			first = set
		case !set.Equal(first):
			return nil, fmt.Errorf("devstack: %s is a share of another key set than %s", p, paths[0])
		}
		shares[i] = sh
	}
	if first.Threshold != t || len(first.Shares) != len(paths) {
		return nil, fmt.Errorf("devstack: the shares in place are of a %d-of-%d key, not %d-of-%d; remove them to start a new key",
			first.Threshold, len(first.Shares), t, len(paths))
	}
	return shares, nil
}

// localDKG runs a distributed key generation among n participants in this
// process, every message passed in memory: the group key is never
// computed, but one process holds every share. DEV ONLY: in production
// each participant is a separate key server or officer (see 'veilmatch
// keyserver dkg').
func localDKG(keyID string, n, t int) ([]*oprf.PrivateKey, error) {
	params := oprf.DKGParams{KeyID: keyID, N: n, T: t}
	parts := make([]*oprf.DKGParticipant, n)
	hellos := make([]*oprf.DKGHello, n)
	for i := range parts {
		var err error
		if parts[i], hellos[i], err = oprf.NewDKG(params, i+1); err != nil {
			return nil, err
		}
	}
	deals := make([]*oprf.DKGDeal, n)
	for i, p := range parts {
		var err error
		if deals[i], err = p.Deal(hellos); err != nil {
			return nil, err
		}
	}
	complaints := make([]*oprf.DKGComplaints, n)
	for i, p := range parts {
		var err error
		if complaints[i], err = p.Complain(deals); err != nil {
			return nil, err
		}
	}
	var reveals []*oprf.DKGReveal
	for _, p := range parts {
		r, err := p.Reveal(complaints)
		if err != nil {
			return nil, err
		}
		if r != nil {
			reveals = append(reveals, r)
		}
	}
	shares := make([]*oprf.PrivateKey, n)
	for i, p := range parts {
		sh, disq, err := p.Finish(deals, complaints, reveals)
		if err != nil {
			return nil, err
		}
		if len(disq) > 0 {
			return nil, errors.New("devstack: a participant of the in-process key generation was disqualified")
		}
		shares[i] = sh
	}
	return shares, nil
}
