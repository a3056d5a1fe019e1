package playback

import (
	"archive/zip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/mp4"
)

// VerifyReport is what Verify found: Problems is empty when the export is
// intact and signed by the expected key.
type VerifyReport struct {
	Manifest *ExportManifest
	Problems []string
	Notes    []string
}

// maxExportFile bounds one file read from an export.
const maxExportFile = 8 << 30

// VerifyExport checks an export (a zip, or a directory it was unpacked
// into) against its signed manifest. pub is the key it must be signed
// with; nil accepts the key named in the manifest, with a note that this
// proves integrity, not origin.
func VerifyExport(path string, pub ed25519.PublicKey) (*VerifyReport, error) {
	fsys, closeFn, err := openExport(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	rep := &VerifyReport{}
	mb, err := readAll(fsys, ManifestName, 16<<20)
	if err != nil {
		return nil, fmt.Errorf("%s: %s is missing or unreadable (%v): this is not an export, or its manifest was removed", path, ManifestName, err)
	}
	sb, err := readAll(fsys, SignatureName, 1<<10)
	if err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("missing: %s (the signature): nothing in the export can be proven authentic", SignatureName))
	}
	var m ExportManifest
	if err := json.Unmarshal(mb, &m); err != nil || m.Kind != exportKind || m.Version != 1 {
		return nil, fmt.Errorf("%s: %s is not a version 1 %s manifest (%v)", path, ManifestName, exportKind, err)
	}
	rep.Manifest = &m
	if sb != nil {
		sig, err := hex.DecodeString(strings.TrimSpace(string(sb)))
		key := pub
		if key == nil {
			kb, kerr := hex.DecodeString(m.PublicKey)
			if kerr == nil && len(kb) == ed25519.PublicKeySize {
				key = kb
			}
			rep.Notes = append(rep.Notes, "signature checked against the key named in the export itself (key id "+m.KeyID+
				"): this proves the files match what was signed, not who signed it; pass -key with the server's export key (.pub) for that")
		}
		switch {
		case err != nil || len(sig) != ed25519.SignatureSize:
			rep.Problems = append(rep.Problems, "altered: "+SignatureName+" is not an ed25519 signature")
		case key == nil || len(key) != ed25519.PublicKeySize:
			rep.Problems = append(rep.Problems, "altered: the manifest's public key is not an ed25519 key")
		case !ed25519.Verify(key, mb, sig):
			rep.Problems = append(rep.Problems, "altered: "+ManifestName+" does not match its signature (the manifest was changed, or it was signed by another key; key id in manifest "+m.KeyID+")")
		}
	}
	listed := map[string]bool{ManifestName: true, SignatureName: true}
	for _, f := range m.Files {
		listed[f.Name] = true
		rep.Problems = append(rep.Problems, verifyFile(fsys, f)...)
	}
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !listed[p] {
			rep.Problems = append(rep.Problems, "added: "+p+" is not in the signed manifest")
		}
		return nil
	})
	return rep, nil
}

func openExport(path string) (fs.FS, func(), error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		return os.DirFS(path), func() {}, nil
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is neither a directory nor a readable zip: %w", path, err)
	}
	return zr, func() { zr.Close() }, nil
}

func readAll(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("larger than %d bytes", limit)
	}
	return b, err
}

// verifyFile checks one MP4 and, when it does not match, says where:
// its init, each fragment (altered, missing, out of order), or bytes
// added at the end.
func verifyFile(fsys fs.FS, f ExportFile) []string {
	b, err := readAll(fsys, f.Name, maxExportFile)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{fmt.Sprintf("missing: %s (source %s, from %s)", f.Name, f.Source, f.CaptureStart.Format(time.RFC3339Nano))}
	}
	if err != nil {
		return []string{fmt.Sprintf("unreadable: %s: %v", f.Name, err)}
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) == f.Size && hex.EncodeToString(sum[:]) == f.SHA256 {
		return nil
	}
	var out []string
	if int64(len(b)) < f.InitSize || hexSum(b[:f.InitSize]) != f.InitSHA256 {
		out = append(out, fmt.Sprintf("altered: %s: its init (codec description, first %d bytes) differs", f.Name, f.InitSize))
	}
	byHash := map[string]int{}
	for i, p := range f.Parts {
		byHash[p.SHA256] = i
	}
	seen := make([]bool, len(f.Parts))
	changedAt := map[int]bool{} // positions holding an unknown fragment
	pos, prev := 0, -1
	off := int(min(f.InitSize, int64(len(b))))
	for off < len(b) {
		end, err := partEnd(b, off)
		if err != nil {
			out = append(out, fmt.Sprintf("altered: %s: the bytes from offset %d are not a fragment (%v)", f.Name, off, err))
			break
		}
		h := hexSum(b[off:end])
		i, ok := byHash[h]
		switch {
		case !ok:
			what := "an unknown fragment"
			changedAt[pos] = true
			if pos < len(f.Parts) {
				p := f.Parts[pos]
				what = fmt.Sprintf("fragment %d (capture %s) was changed", p.Seq, p.CaptureStart.Format(time.RFC3339Nano))
			}
			out = append(out, fmt.Sprintf("altered: %s, bytes %d to %d: %s", f.Name, off, end-1, what))
		case seen[i]:
			out = append(out, fmt.Sprintf("added: %s at offset %d: fragment %d appears again", f.Name, off, f.Parts[i].Seq))
		default:
			seen[i] = true
			if i < prev {
				out = append(out, fmt.Sprintf("reordered: %s: fragment %d (capture %s) comes after fragment %d (capture %s), which was signed after it",
					f.Name, f.Parts[i].Seq, f.Parts[i].CaptureStart.Format(time.RFC3339Nano), f.Parts[prev].Seq, f.Parts[prev].CaptureStart.Format(time.RFC3339Nano)))
			}
			prev = max(prev, i)
		}
		pos++
		off = end
	}
	for i, p := range f.Parts {
		if !seen[i] && !changedAt[i] {
			out = append(out, fmt.Sprintf("missing: %s: fragment %d (capture %s, %d bytes)", f.Name, p.Seq, p.CaptureStart.Format(time.RFC3339Nano), p.Size))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("altered: %s: SHA-256 %s, signed %s", f.Name, hex.EncodeToString(sum[:]), f.SHA256))
	}
	return out
}

// partEnd returns the end of the fragment at off: [prft] moof mdat.
func partEnd(b []byte, off int) (int, error) {
	bx, err := mp4.NextBox(b, off, len(b))
	if err != nil {
		return 0, err
	}
	if bx.Type == "prft" {
		if bx, err = mp4.NextBox(b, bx.End, len(b)); err != nil {
			return 0, err
		}
	}
	if bx.Type != "moof" {
		return 0, fmt.Errorf("box %q where a moof belongs", bx.Type)
	}
	mdat, err := mp4.NextBox(b, bx.End, len(b))
	if err != nil || mdat.Type != "mdat" {
		return 0, fmt.Errorf("moof without mdat")
	}
	return mdat.End, nil
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// DefaultExportKeyFile is where exports' signing key is kept by default;
// its public key is beside it (.pub).
const DefaultExportKeyFile = "data/export.key"

const verifyUsage = "export verify [-key " + DefaultExportKeyFile + ".pub] EXPORT (a .zip, or the directory it was unpacked into)"

// Command runs an export subcommand: verify.
func Command(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return fmt.Errorf("usage: %s", verifyUsage)
	}
	fl := flag.NewFlagSet("export verify", flag.ContinueOnError)
	fl.SetOutput(stdout)
	keyFile := fl.String("key", DefaultExportKeyFile+".pub", "public key of the export signing key (record.export_signing_key_file + .pub); empty trusts the key named in the export")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("usage: %s", verifyUsage)
	}
	var pub ed25519.PublicKey
	if *keyFile != "" {
		var err error
		if pub, err = audit.ReadPublicKey(*keyFile); err != nil {
			return fmt.Errorf("export verify: %w", err)
		}
	}
	path := filepath.Clean(fl.Arg(0))
	rep, err := VerifyExport(path, pub)
	if err != nil {
		return fmt.Errorf("export verify: %w", err)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(stdout, p)
	}
	m := rep.Manifest
	if len(rep.Problems) > 0 {
		return fmt.Errorf("export verify FAILED: %s: %d problem(s)", path, len(rep.Problems))
	}
	_, err = fmt.Fprintf(stdout, "OK: %s: %d file(s) of incident %s, %s to %s, exported by %s at %s from site %s, signed by key %s\n",
		path, len(m.Files), m.Incident, m.Start.Format(time.RFC3339Nano), m.End.Format(time.RFC3339Nano), m.ExportedBy,
		m.Created.Format(time.RFC3339), m.Site, m.KeyID)
	return err
}
