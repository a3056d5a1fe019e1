// Package conf holds the configuration of both binaries. Each binary reads one
// YAML file whose shipped content equals the built-in defaults; any value can
// be overridden by an environment variable named after its path, e.g.
// FV_SFU_HTTP_ADDRESS or FV_INGEST_CAMERAS (lists and maps take YAML or JSON).
package conf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads path (if not empty) over the defaults in dst, then applies
// environment overrides that start with prefix (e.g. "FV_SFU").
func Load(path, prefix string, dst any, environ []string) error {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		if err := Decode(b, dst); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	return applyEnv(prefix, dst, environ)
}

// Decode parses YAML into dst, refusing unknown keys so that typos are
// reported instead of silently ignored.
func Decode(b []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w (check the key names and value types against configs/)", err)
	}
	return nil
}

// applyEnv walks dst's fields by their yaml tags and sets any field whose
// environment variable is present.
func applyEnv(prefix string, dst any, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, prefix+"_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	used := map[string]bool{}
	if err := walkEnv(reflect.ValueOf(dst).Elem(), prefix, env, used); err != nil {
		return err
	}
	for k := range env {
		if !used[k] {
			return fmt.Errorf("environment variable %s names no setting; see configs/ for the names (path in upper case, joined by _)", k)
		}
	}
	return nil
}

func walkEnv(v reflect.Value, name string, env map[string]string, used map[string]bool) error {
	if val, ok := env[name]; ok {
		used[name] = true
		ptr := reflect.New(v.Type())
		ptr.Elem().Set(v)
		if err := yaml.Unmarshal([]byte(val), ptr.Interface()); err != nil {
			return fmt.Errorf("environment variable %s: %w", name, err)
		}
		v.Set(ptr.Elem())
		return nil
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if err := walkEnv(v.Field(i), name+"_"+strings.ToUpper(tag), env, used); err != nil {
			return err
		}
	}
	return nil
}

// Marshal renders a configuration as YAML.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}
