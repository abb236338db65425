// Package voprfts runs an independent RFC 9497 implementation for
// interoperability tests: Cloudflare's voprf-ts on @noble/curves'
// ristretto255, under Node.js (voprf.mjs beside this file). It shares no
// code with veilmatch's crypto/oprf or with circl, so tokens that agree
// across the two agree because both follow the RFC.
//
// Start installs the pinned npm packages (npm ci) on first use. A machine
// without Node.js or npm fails the test that needs them: interoperability
// is not optional.
package voprfts

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// Peer is one running voprf-ts process. It serves one request at a time.
type Peer struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

// Start installs the npm packages if they are missing and starts a peer
// that lives until the test ends.
func Start(t testing.TB) *Peer {
	t.Helper()
	dir := sourceDir(t)
	if err := install(dir); err != nil {
		t.Fatalf("voprf-ts: %v", err)
	}
	cmd := exec.Command("node", "voprf.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("voprf-ts: start node (Node.js 20 or later is needed for the interoperability tests): %v", err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	return &Peer{in: in, out: sc}
}

// sourceDir is the directory of this file, which holds voprf.mjs.
func sourceDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("voprf-ts: cannot locate voprf.mjs")
	}
	return filepath.Dir(file)
}

// install runs npm ci in dir unless node_modules is there, under a lock so
// that test binaries running at once install once.
func install(dir string) error {
	lock, err := os.OpenFile(filepath.Join(dir, "node_modules.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@cloudflare", "voprf-ts")); err == nil {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s (Node.js and npm are needed for the interoperability tests): %w\n%s", dir, err, out)
	}
	return nil
}

// call sends one request and reads one answer into resp.
func (p *Peer) call(req, resp any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("voprf-ts: write: %w", err)
	}
	if !p.out.Scan() {
		if err := p.out.Err(); err != nil {
			return fmt.Errorf("voprf-ts: read: %w", err)
		}
		return errors.New("voprf-ts: the process exited")
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(p.out.Bytes(), &e); err == nil && e.Error != "" {
		return fmt.Errorf("voprf-ts: %s", e.Error)
	}
	return json.Unmarshal(p.out.Bytes(), resp)
}

// Blind has the peer, as a client pinned to the serialized public key pub,
// blind inputs. It returns the serialized blinded elements; Finalize must
// follow.
func (p *Peer) Blind(pub []byte, inputs [][]byte) ([][]byte, error) {
	var resp struct {
		Blinded []string `json:"blinded"`
	}
	req := map[string]any{"op": "client", "public_key": hex.EncodeToString(pub), "inputs": hexAll(inputs)}
	if err := p.call(req, &resp); err != nil {
		return nil, err
	}
	return unhexAll(resp.Blinded)
}

// Finalize has the peer verify a key server's answer to the last Blind
// and finalize it: the 64-byte RFC 9497 outputs, or an error if the proof
// does not verify.
func (p *Peer) Finalize(evaluated [][]byte, proof []byte) ([][]byte, error) {
	var resp struct {
		Outputs []string `json:"outputs"`
	}
	req := map[string]any{"evaluated": hexAll(evaluated), "proof": hex.EncodeToString(proof)}
	if err := p.call(req, &resp); err != nil {
		return nil, err
	}
	return unhexAll(resp.Outputs)
}

// Evaluate has the peer, as a key server with the serialized private key
// priv, evaluate blinded elements and prove it.
func (p *Peer) Evaluate(priv []byte, blinded [][]byte) (evaluated [][]byte, proof []byte, err error) {
	var resp struct {
		Evaluated []string `json:"evaluated"`
		Proof     string   `json:"proof"`
	}
	req := map[string]any{"op": "server", "private_key": hex.EncodeToString(priv), "blinded": hexAll(blinded)}
	if err := p.call(req, &resp); err != nil {
		return nil, nil, err
	}
	if evaluated, err = unhexAll(resp.Evaluated); err != nil {
		return nil, nil, err
	}
	proof, err = hex.DecodeString(resp.Proof)
	return evaluated, proof, err
}

func hexAll(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = hex.EncodeToString(b)
	}
	return out
}

func unhexAll(ss []string) ([][]byte, error) {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		var err error
		if out[i], err = hex.DecodeString(s); err != nil {
			return nil, fmt.Errorf("voprf-ts: %w", err)
		}
	}
	return out, nil
}
