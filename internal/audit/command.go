package audit

import (
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultPublicKeyFile is where verify looks for the public key by default:
// beside the default signing key.
const DefaultPublicKeyFile = "data/audit.key.pub"

const commandUsage = "audit verify [-key " + DefaultPublicKeyFile + "] FILE... (several files: a rotated set, oldest first)"

// Command runs an audit subcommand:
//
//	verify [-key data/audit.key.pub] FILE...
//
// verify checks the chain and every checkpoint signature of the files (a
// rotated set, oldest first), prints notes and a one-line summary, and
// returns an error naming the first altered, inserted or missing line.
func Command(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) == 0 {
			return fmt.Errorf("usage: %s", commandUsage)
		}
		return fmt.Errorf("unknown audit command %q; usage: %s", args[0], commandUsage)
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stdout)
	keyFile := fs.String("key", DefaultPublicKeyFile, "public key of the signing key (the .pub file beside audit.signing_key_file); empty checks the chain only")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		return fmt.Errorf("audit verify: no files given; usage: %s", commandUsage)
	}
	var pub ed25519.PublicKey
	if *keyFile != "" {
		var err error
		if pub, err = ReadPublicKey(*keyFile); err != nil {
			return err
		}
	}
	rep, err := VerifyFiles(files, pub)
	for _, n := range rep.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	var p *Problem
	if errors.As(err, &p) {
		signed := "no signed checkpoint before it"
		if rep.LastSigned.Seq > 0 {
			signed = fmt.Sprintf("the last good checkpoint signs up to seq %d", rep.LastSigned.Seq)
		}
		return fmt.Errorf("audit verify FAILED: %w (the chain verifies up to seq %d; %s)", p, rep.LastSeq, signed)
	}
	if err != nil {
		return err
	}
	name := strings.Join(files, ", ")
	if rep.Lines == 0 {
		return fmt.Errorf("audit verify: %s is empty", name)
	}
	if pub != nil && rep.Checkpoints == 0 {
		return fmt.Errorf("audit verify: %s has no signed checkpoint, so nothing in it can be proven authentic (a rewritten log looks the same); "+
			"checkpoints are written every audit.checkpoint_interval and on shutdown: verify again later, or pass -key '' to check the chain only", name)
	}
	what := "OK"
	if pub == nil {
		what = "OK (chain only: signatures NOT checked)"
	}
	_, err = fmt.Fprintf(stdout, "%s: %d file(s), %d lines, seq %d-%d, %d checkpoint(s), %s\n",
		what, len(files), rep.Lines, rep.FirstSeq, rep.LastSeq, rep.Checkpoints, signedText(rep))
	return err
}

func signedText(rep Report) string {
	if rep.LastSigned.Seq == 0 {
		return fmt.Sprintf("nothing signed; %d line(s) unsigned", rep.Unsigned)
	}
	at := fmt.Sprintf("line %d", rep.LastSigned.Line)
	if len(rep.Files) > 1 {
		at = rep.LastSigned.File + " " + at
	}
	if !rep.LastSignedAt.IsZero() {
		at += " at " + rep.LastSignedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("last signed seq %d (%s), %d line(s) after it unsigned", rep.LastSigned.Seq, at, rep.Unsigned)
}
