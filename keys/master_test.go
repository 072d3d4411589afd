package keys_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/portaria/portaria/keys"
)

func TestLoadMasterKeyCreatesAPrivateFileAndReloadsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key, err := keys.LoadMasterKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Fatalf("key is %d bytes, want 32", len(key))
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "master.key"): 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	again, err := keys.LoadMasterKey("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, again) {
		t.Fatal("reloading the key file gave another key")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data directory holds %d entries, want only master.key", len(entries))
	}
}

func TestLoadMasterKeyFromProcessesStartingTogetherAgrees(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = keys.LoadMasterKey("", dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("loader %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("loader %d got another key than loader 0", i)
		}
	}
}

func TestLoadMasterKeyRefusesAFileOthersCanRead(t *testing.T) {
	dir := t.TempDir()
	if _, err := keys.LoadMasterKey("", dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "master.key")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := keys.LoadMasterKey("", dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("LoadMasterKey with a 0644 file = %v, want an error telling to chmod 600", err)
	}
}

func TestLoadMasterKeyAcceptsEveryBase64Form(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		got, err := keys.LoadMasterKey(" "+enc.EncodeToString(raw)+"\n", "")
		if err != nil {
			t.Fatalf("%q: %v", enc.EncodeToString(raw), err)
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("%q decoded to another key", enc.EncodeToString(raw))
		}
	}
}

func TestLoadMasterKeyRejectsBadValuesWithoutEchoingThem(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"not base64", "this is not base64!!", "not valid base64"},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), "16 bytes, want 32"},
		{"33 bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 33)), "33 bytes, want 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys.LoadMasterKey(tc.value, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.value) {
				t.Fatalf("error %q echoes the configured value", err)
			}
		})
	}
	t.Run("a corrupt key file", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "master.key"), []byte("short"), 0o600)
		if _, err := keys.LoadMasterKey("", dir); err == nil || !strings.Contains(err.Error(), "master.key") {
			t.Fatalf("error = %v, want it to name the file", err)
		}
	})
}

func newSealer(t testing.TB) *keys.Sealer {
	t.Helper()
	master := make([]byte, 32)
	rand.Read(master)
	s, err := keys.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerRoundTripsAndDetectsTampering(t *testing.T) {
	s := newSealer(t)
	plain := []byte("a private key")
	aad := []byte("kid-1")
	sealed, err := s.Seal(plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := s.Open(sealed, aad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want %q", got, err, plain)
	}
	again, _ := s.Seal(plain, aad)
	if bytes.Equal(again, sealed) {
		t.Fatal("sealing twice gave the same bytes: the nonce is not random")
	}
	for i := range sealed {
		tampered := bytes.Clone(sealed)
		tampered[i] ^= 0x01
		if _, err := s.Open(tampered, aad); err == nil {
			t.Fatalf("Open accepted a value with byte %d flipped", i)
		}
	}
	if _, err := s.Open(sealed, []byte("kid-2")); err == nil {
		t.Fatal("Open accepted another AAD")
	}
	if _, err := s.Open(sealed[:10], aad); err == nil {
		t.Fatal("Open accepted a truncated value")
	}
	if _, err := newSealer(t).Open(sealed, aad); err == nil {
		t.Fatal("Open accepted a value sealed under another master key")
	}
}

func TestNewSealerRefusesAKeyOfTheWrongSize(t *testing.T) {
	if _, err := keys.NewSealer(make([]byte, 16)); err == nil {
		t.Fatal("NewSealer accepted a 16-byte key")
	}
}

func TestDeriveKeyIsPerPurposeAndNeverTheMasterKey(t *testing.T) {
	master := make([]byte, 32)
	rand.Read(master)
	a := keys.DeriveKey(master, "client-secret-pepper")
	b := keys.DeriveKey(master, "totp")
	if len(a) != 32 || bytes.Equal(a, b) || bytes.Equal(a, master) {
		t.Fatal("derived keys must be 32 bytes, differ per purpose and differ from the master key")
	}
	if !bytes.Equal(a, keys.DeriveKey(master, "client-secret-pepper")) {
		t.Fatal("DeriveKey is not deterministic")
	}
}
