package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/veilmatch/veilmatch/crypto/oprf"
	"github.com/veilmatch/veilmatch/internal/atomicfile"
)

// Key ceremonies: a distributed key generation (keyserver dkg) and a
// resharing (keyserver reshare), run by key officers who each keep a
// secret state file and publish messages on a board, a directory every
// officer reads (a shared drive, or files carried from one to the other).
// Every step reads the board, writes its message there (never replacing
// one already published) and says what comes next.

// Board files: who publishes them, by index.
const (
	boardHello      = "hello"      // every receiver of shares
	boardDeal       = "deal"       // every dealer
	boardComplaints = "complaints" // every receiver
	boardReveal     = "reveal"     // every dealer
	boardReshare    = "reshare.json"
)

func boardFile(dir, kind string, index int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%d.json", kind, index))
}

// publish writes a message to the board; a message already published is
// never replaced, since others may have read it.
func publish(dir, kind string, index int, v any) (string, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	path := boardFile(dir, kind, index)
	if err := atomicfile.Create(path, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("publish %s: %w (already published? a message on the board is never replaced)", path, err)
	}
	return path, nil
}

// readBoard reads every message of a kind on the board, in index order.
func readBoard[T any](dir, kind string) ([]*T, error) {
	paths, err := filepath.Glob(filepath.Join(dir, kind+"-*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	out := make([]*T, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			return nil, fmt.Errorf("board message %s: %w", p, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// saveState writes an officer's secret state (mode 0600).
func saveState(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("save ceremony state: %w", err)
	}
	return nil
}

// loadState reads an officer's secret state.
func loadState(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read ceremony state: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("ceremony state %s: %w", path, err)
	}
	return nil
}

// ceremonyFlags are the flags every ceremony step takes.
type ceremonyFlags struct {
	state, board string
}

func (f *ceremonyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.state, "state", "", "this officer's secret ceremony state `FILE` (mode 0600; keep it as a key file until the end)")
	fs.StringVar(&f.board, "board", "", "the board `DIR` every officer reads and publishes to")
}

func (f *ceremonyFlags) check() error {
	if f.state == "" || f.board == "" {
		return usagef("", "--state and --board are required")
	}
	return os.MkdirAll(f.board, 0o755)
}

func cmdDKG(e env, args []string) error {
	steps := map[string]func(env, []string) error{
		"init": cmdDKGInit, "deal": cmdDKGDeal, "complain": cmdDKGComplain, "reveal": cmdDKGReveal, "finish": cmdDKGFinish,
	}
	return ceremonyStep(e, "dkg", "init|deal|complain|reveal|finish", steps, args)
}

func cmdReshare(e env, args []string) error {
	steps := map[string]func(env, []string) error{
		"propose": cmdResharePropose, "init": cmdReshareInit, "deal": cmdReshareDeal,
		"complain": cmdReshareComplain, "reveal": cmdReshareReveal, "finish": cmdReshareFinish,
	}
	return ceremonyStep(e, "reshare", "propose|init|deal|complain|reveal|finish", steps, args)
}

// ceremonyStep runs one step of a ceremony.
func ceremonyStep(e env, name, list string, steps map[string]func(env, []string) error, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(e.stdout, "Usage: veilmatch keyserver %s %s [flags]\n\nThe steps are described in the README, section \"Threshold keys\"; each takes -h.\n", name, list)
		if len(args) == 0 {
			return usagef("", "name a step: %s", list)
		}
		return nil
	}
	step, ok := steps[args[0]]
	if !ok {
		return usagef("", "unknown step %q of keyserver %s: use %s", args[0], name, list)
	}
	return step(e, args[1:])
}

func cmdDKGInit(e env, args []string) error {
	fs := newFlagSet(e, "keyserver dkg init", "keyserver dkg init --key-id ID --shares N --threshold T --index I --state FILE --board DIR",
		"veilmatch keyserver dkg init --key-id k2027 --shares 3 --threshold 2 --index 1 --state officer1.state --board board")
	var cf ceremonyFlags
	cf.register(fs)
	keyID := fs.String("key-id", "", "the new key's `ID`, the same for every officer")
	n := fs.Int("shares", 0, "`N`, the number of officers (key servers)")
	t := fs.Int("threshold", 0, "`T`, how many shares evaluate")
	index := fs.Int("index", 0, "this officer's share `I`ndex, 1 to N")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if _, err := os.Stat(cf.state); err == nil {
		return fmt.Errorf("%s exists: this officer already joined a ceremony", cf.state)
	}
	p, hello, err := oprf.NewDKG(oprf.DKGParams{KeyID: *keyID, N: *n, T: *t}, *index)
	if err != nil {
		return err
	}
	if err := saveState(cf.state, p); err != nil {
		return err
	}
	path, err := publish(cf.board, boardHello, *index, hello)
	if err != nil {
		return err
	}
	return nextStep(e, path, fmt.Sprintf("when all %d hellos are on the board", *n), "dkg deal", cf)
}

// nextStep says what a step published and what the officer does next.
func nextStep(e env, path, when, step string, cf ceremonyFlags) error {
	fmt.Fprintf(e.stdout, "published %s\nnext, %s: veilmatch keyserver %s --state %s --board %s\n", path, when, step, cf.state, cf.board)
	return nil
}

// readRounds reads the deals, complaints and reveals on the board.
func readRounds(board string) ([]*oprf.DKGDeal, []*oprf.DKGComplaints, []*oprf.DKGReveal, error) {
	deals, err := readBoard[oprf.DKGDeal](board, boardDeal)
	if err != nil {
		return nil, nil, nil, err
	}
	complaints, err := readBoard[oprf.DKGComplaints](board, boardComplaints)
	if err != nil {
		return nil, nil, nil, err
	}
	reveals, err := readBoard[oprf.DKGReveal](board, boardReveal)
	return deals, complaints, reveals, err
}

// writeFinished writes the officer's new share, removes the ceremony
// state, and prints the key set for the officers to compare.
func writeFinished(e env, cf ceremonyFlags, out string, share *oprf.PrivateKey, disq []int) error {
	if err := oprf.WriteKeyFile(out, share); err != nil {
		return err
	}
	if err := os.Remove(cf.state); err != nil {
		return fmt.Errorf("remove the ceremony state %s (it holds secrets; remove it by hand): %w", cf.state, err)
	}
	index, set, _ := share.Share()
	fmt.Fprintf(e.stdout, "wrote share %d of the %d-of-%d key %s to %s\n", index, set.Threshold, len(set.Shares), set.KeyID, out)
	if len(disq) > 0 {
		fmt.Fprintf(e.stderr, "veilmatch: warning: dealer(s) %v were disqualified: their deals failed in public; the key is made without them\n", disq)
	}
	printShares(e, filepath.Dir(out), set)
	fmt.Fprintln(e.stdout, "compare the group key with every other officer out of band before serving the share")
	return nil
}

func cmdResharePropose(e env, args []string) error {
	fs := newFlagSet(e, "keyserver reshare propose", "keyserver reshare propose --share-file OLD --shares N --threshold T --board DIR",
		"veilmatch keyserver reshare propose --share-file share-1.json --shares 4 --threshold 3 --board board")
	shareFile := fs.String("share-file", "", "a current share `FILE` of the key to reshare (only its public key set is used)")
	n := fs.Int("shares", 0, "`N`, the number of new holders")
	t := fs.Int("threshold", 0, "`T`, how many new shares evaluate")
	board := fs.String("board", "", "the board `DIR`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *shareFile == "" || *board == "" {
		return usagef("", "--share-file and --board are required")
	}
	old, err := oprf.LoadKeyFile(*shareFile)
	if err != nil {
		return err
	}
	_, set, ok := old.Share()
	if !ok {
		return fmt.Errorf("%s holds a whole key; split it (keyserver split-key) instead of resharing", *shareFile)
	}
	p := oprf.ReshareParams{Old: set, Chain: old.Endorsements(), N: *n, T: *t}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*board, 0o755); err != nil {
		return err
	}
	path := filepath.Join(*board, boardReshare)
	if err := atomicfile.Create(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	fmt.Fprintf(e.stdout, "published %s: key %s generation %d (%d-of-%d) to %d-of-%d\n", path, set.KeyID, set.Generation, set.Threshold, len(set.Shares), *t, *n)
	fmt.Fprintf(e.stdout, "next: each new holder runs veilmatch keyserver reshare init --index J --state FILE --board %s\n", *board)
	return nil
}

// reshareParams reads the resharing's parameters from the board.
func reshareParams(board string) (oprf.ReshareParams, error) {
	var p oprf.ReshareParams
	data, err := os.ReadFile(filepath.Join(board, boardReshare))
	if err != nil {
		return p, fmt.Errorf("%w (an old holder publishes it with 'veilmatch keyserver reshare propose')", err)
	}
	return p, json.Unmarshal(data, &p)
}

func cmdReshareInit(e env, args []string) error {
	fs := newFlagSet(e, "keyserver reshare init", "keyserver reshare init --index J --state FILE --board DIR",
		"veilmatch keyserver reshare init --index 4 --state holder4.state --board board")
	var cf ceremonyFlags
	cf.register(fs)
	index := fs.Int("index", 0, "this new holder's share `J`, 1 to N")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	p, err := reshareParams(cf.board)
	if err != nil {
		return err
	}
	r, hello, err := oprf.NewReshareReceiver(p, *index)
	if err != nil {
		return err
	}
	if err := saveState(cf.state, r); err != nil {
		return err
	}
	path, err := publish(cf.board, boardHello, *index, hello)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "published %s\nnext: the old holders deal (veilmatch keyserver reshare deal --share-file OLD --state FILE --board %s)\n", path, cf.board)
	return nil
}

func cmdReshareDeal(e env, args []string) error {
	fs := newFlagSet(e, "keyserver reshare deal", "keyserver reshare deal --share-file OLD --state FILE --board DIR",
		"veilmatch keyserver reshare deal --share-file share-1.json --state dealer1.state --board board")
	var cf ceremonyFlags
	cf.register(fs)
	shareFile := fs.String("share-file", "", "this old holder's share `FILE`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	p, err := reshareParams(cf.board)
	if err != nil {
		return err
	}
	old, err := oprf.LoadKeyFile(*shareFile)
	if err != nil {
		return err
	}
	hellos, err := readBoard[oprf.DKGHello](cf.board, boardHello)
	if err != nil {
		return err
	}
	d, deal, err := oprf.ReshareDeal(p, old, hellos)
	if err != nil {
		return err
	}
	return publishDeal(e, cf, d, d.Index(), deal, "when every new holder's complaints are on the board", "reshare reveal")
}

// publishDeal saves the dealer's state, then publishes its deal.
func publishDeal(e env, cf ceremonyFlags, state any, index int, deal *oprf.DKGDeal, when, next string) error {
	if err := saveState(cf.state, state); err != nil {
		return err
	}
	path, err := publish(cf.board, boardDeal, index, deal)
	if err != nil {
		return err
	}
	return nextStep(e, path, when, next, cf)
}

// loadStep parses a ceremony step's flags (extra adds more) and loads the
// officer's state into st.
func loadStep(e env, cmd, step, example string, st any, args []string, extra ...func(*flag.FlagSet)) (ceremonyFlags, error) {
	fs := newFlagSet(e, "keyserver "+cmd+" "+step, "keyserver "+cmd+" "+step+" --state FILE --board DIR",
		"veilmatch keyserver "+cmd+" "+step+" --state "+example+" --board board")
	var cf ceremonyFlags
	cf.register(fs)
	for _, f := range extra {
		f(fs)
	}
	if _, err := parse(fs, args); err != nil {
		return cf, err
	}
	if err := cf.check(); err != nil {
		return cf, err
	}
	return cf, loadState(cf.state, st)
}

// receiver is who receives shares in a ceremony: a DKG participant or a
// new holder in a resharing.
type receiver interface {
	Complain(deals []*oprf.DKGDeal) (*oprf.DKGComplaints, error)
	Finish(deals []*oprf.DKGDeal, complaints []*oprf.DKGComplaints, reveals []*oprf.DKGReveal) (*oprf.PrivateKey, []int, error)
}

// dealer is who answers complaints: a DKG participant or an old holder.
type dealer interface {
	Index() int
	Reveal(complaints []*oprf.DKGComplaints) (*oprf.DKGReveal, error)
}

func cmdDKGDeal(e env, args []string) error {
	p := new(oprf.DKGParticipant)
	cf, err := loadStep(e, "dkg", "deal", "officer1.state", p, args)
	if err != nil {
		return err
	}
	hellos, err := readBoard[oprf.DKGHello](cf.board, boardHello)
	if err != nil {
		return err
	}
	deal, err := p.Deal(hellos)
	if err != nil {
		return err
	}
	return publishDeal(e, cf, p, p.Index(), deal, "when every officer's deal is on the board", "dkg complain")
}

func cmdDKGComplain(e env, args []string) error {
	p := new(oprf.DKGParticipant)
	return complainStep(e, "dkg", "officer1.state", p, args, "dkg reveal")
}

func cmdReshareComplain(e env, args []string) error {
	r := new(oprf.ReshareReceiver)
	return complainStep(e, "reshare", "holder4.state", r, args, "reshare finish --out SHARE.json (after the old holders' reveals)")
}

// complainStep checks the deals on the board and publishes the receiver's
// complaints.
func complainStep(e env, cmd, example string, r receiver, args []string, next string) error {
	cf, err := loadStep(e, cmd, "complain", example, r, args)
	if err != nil {
		return err
	}
	deals, err := readBoard[oprf.DKGDeal](cf.board, boardDeal)
	if err != nil {
		return err
	}
	c, err := r.Complain(deals)
	if err != nil {
		return err
	}
	path, err := publish(cf.board, boardComplaints, c.Index, c)
	if err != nil {
		return err
	}
	if len(c.Against) > 0 {
		fmt.Fprintf(e.stderr, "veilmatch: warning: complaint against dealer(s) %v: their share for you did not verify; they must reveal it, or be disqualified\n", c.Against)
	}
	return nextStep(e, path, "when every officer's complaints are on the board", next, cf)
}

func cmdDKGReveal(e env, args []string) error {
	p := new(oprf.DKGParticipant)
	cf, path, err := revealStep(e, "dkg", "officer1.state", p, args)
	if err != nil {
		return err
	}
	return nextStep(e, path, "when every officer's reveal is on the board", "dkg finish --out SHARE.json", cf)
}

func cmdReshareReveal(e env, args []string) error {
	d := new(oprf.ReshareDealer)
	cf, path, err := revealStep(e, "reshare", "dealer1.state", d, args)
	if err != nil {
		return err
	}
	if err := os.Remove(cf.state); err != nil {
		return fmt.Errorf("remove the dealer state %s (it holds secrets; remove it by hand): %w", cf.state, err)
	}
	fmt.Fprintf(e.stdout, "published %s; your part as an old holder is done. Once the new shares serve, destroy your old share file.\n", path)
	return nil
}

// revealStep answers the complaints on the board against the dealer.
func revealStep(e env, cmd, example string, d dealer, args []string) (ceremonyFlags, string, error) {
	cf, err := loadStep(e, cmd, "reveal", example, d, args)
	if err != nil {
		return cf, "", err
	}
	complaints, err := readBoard[oprf.DKGComplaints](cf.board, boardComplaints)
	if err != nil {
		return cf, "", err
	}
	r, err := d.Reveal(complaints)
	if err != nil {
		return cf, "", err
	}
	path, err := publish(cf.board, boardReveal, d.Index(), r)
	return cf, path, err
}

func cmdDKGFinish(e env, args []string) error {
	return finishStep(e, "dkg", "officer1.state", new(oprf.DKGParticipant), args)
}

func cmdReshareFinish(e env, args []string) error {
	return finishStep(e, "reshare", "holder4.state", new(oprf.ReshareReceiver), args)
}

// finishStep computes the receiver's share from the board and writes it.
func finishStep(e env, cmd, example string, r receiver, args []string) error {
	var out string
	cf, err := loadStep(e, cmd, "finish", example, r, args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "out", "", "share `FILE` to write (mode 0600, never overwritten)")
	})
	if err != nil {
		return err
	}
	if out == "" {
		return usagef("", "--out is required")
	}
	deals, complaints, reveals, err := readRounds(cf.board)
	if err != nil {
		return err
	}
	share, disq, err := r.Finish(deals, complaints, reveals)
	if err != nil {
		return err
	}
	return writeFinished(e, cf, out, share, disq)
}
