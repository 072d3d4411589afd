package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// rsaBits is the RSA modulus size: 3072 bits gives 128-bit strength.
const rsaBits = 3072

// signingKey is a stored key opened for use: its private half decrypted once, at load.
type signingKey struct {
	StoredKey
	signer    crypto.Signer
	sigSize   int
	publicJWK json.RawMessage // derived from the private key: public parameters, kid, alg, use
	prefixes  sync.Map        // typ → base64url(protected header) + "."
}

// signingPrefix returns the encoded protected header for typ followed by ".". It is built once
// per key and typ (callers use a handful of constant types), which keeps JSON encoding off the
// signing path.
func (k *signingKey) signingPrefix(typ string) []byte {
	if p, ok := k.prefixes.Load(typ); ok {
		return p.([]byte)
	}
	hdr, _ := json.Marshal(struct {
		Alg Alg    `json:"alg"`
		KID string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{k.Alg, k.KID, typ})
	p := append(base64.RawURLEncoding.AppendEncode(nil, hdr), '.')
	k.prefixes.Store(typ, p)
	return p
}

// sign returns the JWS compact serialization of payload. It signs with the standard library
// directly (RFC 7518 §3) rather than through jws.Sign, whose generic header handling costs as
// much as the signature itself; tests verify the output with jwx.
func (k *signingKey) sign(typ string, payload []byte) (string, error) {
	enc := base64.RawURLEncoding
	prefix := k.signingPrefix(typ)
	buf := make([]byte, 0, len(prefix)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(k.sigSize))
	buf = append(buf, prefix...)
	buf = enc.AppendEncode(buf, payload)
	sig, err := k.signature(buf)
	if err != nil {
		return "", fmt.Errorf("keys: sign with %s: %w", k.KID, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

func (k *signingKey) signature(input []byte) ([]byte, error) {
	switch priv := k.signer.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, input), nil
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
		if err != nil {
			return nil, err
		}
		// JWS wants r and s as fixed-size big-endian integers, not ASN.1 (RFC 7518 §3.4).
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case *rsa.PrivateKey:
		h := sha256.Sum256(input)
		return rsa.SignPKCS1v15(nil, priv, crypto.SHA256, h[:])
	}
	return nil, fmt.Errorf("unsupported key type %T", k.signer)
}

// newStoredKey generates a key pair and seals its private half.
func newStoredKey(sealer *Sealer, alg Alg, generation int64, createdAt, activatesAt time.Time) (StoredKey, error) {
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case ES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	case RS256:
		signer, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return StoredKey{}, fmt.Errorf("keys: unsupported algorithm %q", alg)
	}
	if err != nil {
		return StoredKey{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	id := make([]byte, 16)
	rand.Read(id)
	kid := base64.RawURLEncoding.EncodeToString(id)

	pub, err := publicJWK(signer, kid, alg)
	if err != nil {
		return StoredKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return StoredKey{}, fmt.Errorf("keys: encode private key: %w", err)
	}
	sealed, err := sealer.Seal(der, []byte(kid))
	if err != nil {
		return StoredKey{}, err
	}
	return StoredKey{
		KID:           kid,
		Generation:    generation,
		Alg:           alg,
		PublicJWK:     pub,
		PrivateSealed: sealed,
		CreatedAt:     createdAt,
		ActivatesAt:   activatesAt,
	}, nil
}

// openKey decrypts a stored key and checks that its parts agree, so that a corrupted or
// tampered row fails at load rather than producing tokens nobody can verify.
func openKey(sealer *Sealer, k StoredKey) (*signingKey, error) {
	der, err := sealer.Open(k.PrivateSealed, []byte(k.KID))
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.KID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: parse private key: %w", k.KID, err)
	}
	ok, sigSize := false, 64
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		ok = k.Alg == ES256 && p.Curve == elliptic.P256()
	case ed25519.PrivateKey:
		ok = k.Alg == EdDSA
	case *rsa.PrivateKey:
		ok, sigSize = k.Alg == RS256 && p.N.BitLen() >= rsaBits, p.Size()
	}
	if !ok {
		return nil, fmt.Errorf("key %s: private key of type %T does not fit algorithm %s", k.KID, priv, k.Alg)
	}
	signer := priv.(crypto.Signer)
	pub, err := publicJWK(signer, k.KID, k.Alg)
	if err != nil {
		return nil, err
	}
	if err := samePublicKey(pub, k.PublicJWK); err != nil {
		return nil, fmt.Errorf("key %s: %w", k.KID, err)
	}
	return &signingKey{StoredKey: k, signer: signer, sigSize: sigSize, publicJWK: pub}, nil
}

// publicJWK renders the public half of signer as a JWK with kid, alg and use=sig. It starts
// from the public key alone, so no private parameter can reach the JWKS.
func publicJWK(signer crypto.Signer, kid string, alg Alg) ([]byte, error) {
	key, err := jwk.Import(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("keys: import public key: %w", err)
	}
	for name, value := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: alg.jwa(),
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := key.Set(name, value); err != nil {
			return nil, fmt.Errorf("keys: set %s on public key: %w", name, err)
		}
	}
	return json.Marshal(key)
}

func samePublicKey(derived, stored []byte) error {
	a, err := jwk.ParseKey(derived)
	if err != nil {
		return err
	}
	b, err := jwk.ParseKey(stored)
	if err != nil {
		return fmt.Errorf("stored public key: %w", err)
	}
	if !jwk.Equal(a, b) {
		return fmt.Errorf("stored public key does not match the private key")
	}
	return nil
}

func (a Alg) jwa() jwa.SignatureAlgorithm {
	switch a {
	case EdDSA:
		return jwa.EdDSA()
	case RS256:
		return jwa.RS256()
	default:
		return jwa.ES256()
	}
}
