package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// MasterKeySize is the length of the master key in bytes.
const MasterKeySize = 32

// MasterKeyFile is the name of the generated master key file inside the data directory.
const MasterKeyFile = "master.key"

// LoadMasterKey returns the master key. A configured key (base64, standard or URL alphabet,
// padded or not) wins; otherwise the key is read from dataDir/master.key, which is created with
// 32 random bytes on first start. Error messages never echo key material.
func LoadMasterKey(configured, dataDir string) ([]byte, error) {
	if configured != "" {
		key, err := decodeMasterKey(configured)
		if err != nil {
			return nil, fmt.Errorf("configured master key: %w", err)
		}
		return key, nil
	}
	if dataDir == "" {
		return nil, errors.New("master key: neither a key nor a data directory is configured")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("master key: create data directory: %w", err)
	}
	path := filepath.Join(dataDir, MasterKeyFile)
	key, err := readMasterKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createMasterKeyFile(path); err != nil {
			return nil, err
		}
		key, err = readMasterKeyFile(path)
	}
	return key, err
}

func decodeMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != MasterKeySize {
			return nil, fmt.Errorf("decodes to %d bytes, want %d", len(key), MasterKeySize)
		}
		return key, nil
	}
	return nil, errors.New("not valid base64")
}

func readMasterKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	// Windows has no Unix permission bits; there the directory ACL is what protects the file.
	if perm := info.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("master key file %s is accessible by group or others (mode %04o): run chmod 600 on it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	key, err := decodeMasterKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return key, nil
}

// createMasterKeyFile writes a new key to a private temporary file and links it into place.
// The link fails if the file already exists, so of two processes starting together exactly one
// key wins, and neither can read the other's file half-written (as with O_EXCL on the final name).
func createMasterKeyFile(path string) error {
	key := make([]byte, MasterKeySize)
	rand.Read(key)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master.key-*") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("master key: create file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("master key: write file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("master key: create %s: %w", path, err)
	}
	return nil
}

// DeriveKey derives a 32-byte key for one purpose from the master key (HKDF-SHA256, the purpose
// as info), so that no two uses share a key and the master key itself is never used directly.
func DeriveKey(master []byte, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, master, nil, purpose, 32)
	if err != nil {
		panic("keys: hkdf: " + err.Error()) // only for lengths over 255×32 bytes
	}
	return key
}

const (
	sealPurpose  = "portaria/keys/seal/v1"
	sealVersion1 = 1
)

// Sealer encrypts small secrets at rest (signing keys, TOTP secrets) with AES-256-GCM under a
// key derived from the master key. A sealed value is: version byte, 12-byte random nonce,
// ciphertext and tag. The version byte lets the format or the derived key change later.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer for a 32-byte master key.
func NewSealer(master []byte) (*Sealer, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("keys: master key is %d bytes, want %d", len(master), MasterKeySize)
	}
	block, err := aes.NewCipher(DeriveKey(master, sealPurpose))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext. aad binds the ciphertext to its context (e.g. the row's id): Open
// with different aad fails.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion1
	rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], plaintext, aad), nil
}

// Open decrypts a value made by Seal with the same aad.
func (s *Sealer) Open(ciphertext, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(ciphertext) < 1+n+s.aead.Overhead() {
		return nil, errors.New("keys: sealed value too short")
	}
	if ciphertext[0] != sealVersion1 {
		return nil, fmt.Errorf("keys: unknown sealed value version %d", ciphertext[0])
	}
	plain, err := s.aead.Open(nil, ciphertext[1:1+n], ciphertext[1+n:], aad)
	if err != nil {
		return nil, errors.New("keys: sealed value does not open: wrong master key, wrong context or tampered data")
	}
	return plain, nil
}
