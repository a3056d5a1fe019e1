package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"fieldvideo/internal/conf"
)

// The cameras file (Params.CamerasFile) keeps the cameras added at run time
// and the run-time changes of the configuration's cameras:
//
//	{"version": 1, "cameras": [
//	  {"name": "gate", "url": "rtsp://admin:pw@10.0.0.5/stream", "transport": "tcp",
//	   "origin": "api", "changed_by": "operator", "changed_at": "2026-12-05T18:40:00Z"},
//	  {"name": "mast", "url": "…", "disabled": true, "origin": "config",
//	   "config_sha256": "<digest of the configuration's entry it overrides>", …}]}
//
// It holds the cameras' passwords, so it is written with mode 0600. Every
// change replaces it whole: a temporary file in the same directory is
// written and synced, renamed over it, and the directory synced, so after a
// crash the file is the old or the new version, never a mix.

// cameraFileVersion is the version of the file's format.
const cameraFileVersion = 1

// maxCameraFile bounds the file read at start.
const maxCameraFile = 16 << 20

// storedCamera is one camera of the cameras file.
type storedCamera struct {
	conf.Camera
	Origin string `json:"origin"`
	// ConfigSHA256 is the digest of the configuration's entry a camera of
	// origin config overrides (cameraSum).
	ConfigSHA256 string    `json:"config_sha256,omitempty"`
	ChangedBy    string    `json:"changed_by,omitempty"`
	ChangedAt    time.Time `json:"changed_at,omitzero"`
}

type cameraFile struct {
	Version int            `json:"version"`
	Cameras []storedCamera `json:"cameras"`
}

// cameraSum is the digest of a configuration camera, recorded with its
// run-time changes so that a later edit of the configuration wins.
func cameraSum(c conf.Camera) string {
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// loadCameraFile reads the cameras file; a missing file (or no file
// configured) holds no cameras.
func loadCameraFile(path string) ([]storedCamera, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cameras_file %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCameraFile+1))
	if err != nil {
		return nil, fmt.Errorf("cameras_file %s: %w", path, err)
	}
	cams, err := parseCameraFile(b)
	if err != nil {
		return nil, fmt.Errorf("cameras_file %s: %w; fix the file, or move it away (ingest then starts with the configuration's cameras only)", path, err)
	}
	return cams, nil
}

// parseCameraFile decodes and checks the content of a cameras file.
func parseCameraFile(b []byte) ([]storedCamera, error) {
	if len(b) > maxCameraFile {
		return nil, fmt.Errorf("the file is larger than %d bytes", maxCameraFile)
	}
	var cf cameraFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("not a cameras file: %v", err)
	}
	if cf.Version != cameraFileVersion {
		return nil, fmt.Errorf("version %d: this ingest reads version %d", cf.Version, cameraFileVersion)
	}
	seen := map[string]bool{}
	for i, c := range cf.Cameras {
		if err := c.Camera.Check(); err != nil {
			return nil, fmt.Errorf("cameras[%d]: %w", i, err)
		}
		if c.Origin != OriginAPI && c.Origin != OriginConfig {
			return nil, fmt.Errorf("cameras[%d] (%s): origin %q: use %s or %s", i, c.Name, c.Origin, OriginAPI, OriginConfig)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("cameras[%d]: name %q is used twice", i, c.Name)
		}
		seen[c.Name] = true
	}
	return cf.Cameras, nil
}

// saveCameraFile replaces the cameras file atomically (see above).
func saveCameraFile(path string, cams []storedCamera) (err error) {
	if cams == nil {
		cams = []storedCamera{}
	}
	b, err := json.MarshalIndent(cameraFile{Version: cameraFileVersion, Cameras: cams}, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
