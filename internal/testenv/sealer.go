package testenv

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"
)

// Sealer seals like keys.Sealer (AES-256-GCM, a random nonce, the aad bound) under a fixed key,
// for the tests of domains that take a sealer without depending on the keys package.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a Sealer; every one opens what any other sealed.
func NewSealer(t testing.TB) Sealer {
	t.Helper()
	block, err := aes.NewCipher(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return Sealer{aead}
}

func (s Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, aad), nil
}

func (s Sealer) Open(ciphertext, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(ciphertext) < n {
		return nil, errors.New("testenv: sealed value too short")
	}
	return s.aead.Open(nil, ciphertext[:n], ciphertext[n:], aad)
}
