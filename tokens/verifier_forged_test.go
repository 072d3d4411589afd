package tokens_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/portaria/portaria/keys"
	"github.com/portaria/portaria/tokens"
)

func TestVerifierAcceptsTokensTheIssuerMints(t *testing.T) {
	for _, alg := range []keys.Alg{keys.ES256, keys.EdDSA, keys.RS256} {
		t.Run(string(alg), func(t *testing.T) {
			e := newVTEnv(t, vtConfig{alg: alg})
			tok, want := e.mint()
			if got := vtHeader(t, tok)["alg"]; got != string(alg) {
				t.Fatalf("minted alg %v, want %s", got, alg)
			}
			got := e.mustVerify(tok)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("claims do not round-trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestVerifierAcceptsTheBoundariesItShould(t *testing.T) {
	e := newVTEnv(t, vtConfig{alg: keys.ES256})
	now := e.clock.Now().Unix()
	skew := int64(5) // the default
	with := func(k string, v any) map[string]any {
		c := e.claims()
		c[k] = v
		return c
	}
	cases := []struct {
		name string
		tok  string
	}{
		{"an aud array that contains this resource server", e.signRing("at+jwt", with("aud", []string{"other", vtAudience}))},
		{"an exp that passed within the skew", e.signRing("at+jwt", with("exp", now-skew+1))},
		{"an nbf in the future within the skew", e.signRing("at+jwt", with("nbf", now+skew))},
		{"an iat in the future within the skew", e.signRing("at+jwt", with("iat", now+skew))},
		{"a fractional exp", e.signRing("at+jwt", with("exp", json.Number("9999999999.5")))},
		{"typ with the application/ prefix", e.signRing("application/at+jwt", e.claims())},
		{"typ in upper case", e.signRing("AT+JWT", e.claims())},
		{"unknown claims", e.signRing("at+jwt", with("x-extra", map[string]any{"a": []int{1}}))},
		{"no iat", func() string { c := e.claims(); delete(c, "iat"); return e.signRing("at+jwt", c) }()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.mustVerify(tc.tok)
		})
	}
	if c := e.mustVerify(cases[0].tok); c.Audience != vtAudience {
		t.Fatalf("Audience = %q, want this resource server", c.Audience)
	}
}

// TestForgedTokensAreRefused is the hostile corpus of SECURITY.md JW-01 … JW-05: every entry
// must be refused with ErrInvalidToken, without a panic, and without any fetch but the JWKS
// (at most one refetch: the cool-down never elapses here).
func TestForgedTokensAreRefused(t *testing.T) {
	e := newVTEnv(t, vtConfig{alg: keys.ES256})
	ec, rk := vtTestKeys()
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kid := e.ringKID()
	now := e.clock.Now().Unix()
	hdr := func(alg, kid string, extra ...any) map[string]any {
		h := map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i].(string)] = extra[i+1]
		}
		return h
	}
	with := func(k string, v any) map[string]any {
		c := e.claims()
		c[k] = v
		return c
	}
	without := func(k string) map[string]any {
		c := e.claims()
		delete(c, k)
		return c
	}
	valid, _ := e.mint()
	vh, vp, vs := vtSegments(valid)
	sig, _ := base64.RawURLEncoding.DecodeString(vs)

	// The published public key in every encoding an HS256 forger might try (JW-01).
	ringJWK := e.ringPublicJWK(kid)
	pubKey, err := jwk.ParseKey(ringJWK)
	if err != nil {
		t.Fatal(err)
	}
	var pub ecdsa.PublicKey
	if err := jwk.Export(pubKey, &pub); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&pub)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	var xy struct{ X, Y string }
	json.Unmarshal(ringJWK, &xy)
	xRaw, _ := base64.RawURLEncoding.DecodeString(xy.X)

	// Servers a token might point at (JW-04): any request to them is a failure.
	var attackerHits atomic.Int64
	attackerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Write([]byte(`{"keys":[` + string(vtPublicJWK(t, &attacker.PublicKey, "evil", jwa.ES256())) + `]}`))
	}))
	defer attackerSrv.Close()
	attackerJWK := vtPublicJWK(t, &attacker.PublicKey, "evil", jwa.ES256())

	curveN := elliptic.P256().Params().N
	rs := func(r, s *big.Int) string {
		b := make([]byte, 64)
		r.FillBytes(b[:32])
		s.FillBytes(b[32:])
		return vh + "." + vp + "." + base64.RawURLEncoding.EncodeToString(b)
	}
	realR, realS := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	derSig, _ := asn1.Marshal(struct{ R, S *big.Int }{realR, realS})

	expiredBadSig := func() string {
		tok := e.signRing("at+jwt", with("exp", now-3600))
		return tok[:len(tok)-2] + vtFlipB64(tok[len(tok)-2:])
	}()
	sigWithAlphabet := func() string {
		for range 200 {
			tok := e.signRing("at+jwt", e.claims())
			h, p, s := vtSegments(tok)
			if strings.ContainsAny(s, "-_") {
				return h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s)
			}
		}
		t.Fatal("no signature with - or _ in 200 tries")
		return ""
	}()

	// Encodings no strict decoder accepts, under signatures that are valid for what was sent.
	// The header's JSON is fixed (62 characters); the payload gets a filler claim until its
	// length leaves padding and unused bits.
	ecHeader := vtB64.EncodeToString(vtJSON(t, hdr("ES256", vtECKID)))
	ecPayload := func() string {
		c := e.claims()
		for {
			if p := vtB64.EncodeToString(vtJSON(t, c)); len(p)%4 != 0 {
				return p
			}
			c["x"] = fmt.Sprint(c["x"], "x")
		}
	}()
	padded := func(seg string) string {
		if len(seg)%4 == 0 {
			t.Fatalf("segment of length %d takes no padding", len(seg))
		}
		return seg + strings.Repeat("=", 4-len(seg)%4)
	}
	stdAlphabetPayload := func() string {
		c := e.claims()
		for i := 1; i < 64; i++ {
			c["scope"] = strings.Repeat("?", i) + strings.Repeat(">", i)
			if p := vtB64.EncodeToString(vtJSON(t, c)); strings.ContainsAny(p, "-_") {
				return strings.NewReplacer("-", "+", "_", "/").Replace(p)
			}
		}
		t.Fatal("no payload encoding with - or _")
		return ""
	}()
	strayBits := func(seg string) string {
		// The last character of a segment whose length is 2 or 3 mod 4 carries unused low bits,
		// which a canonical encoding leaves at zero; flip the lowest.
		if len(seg)%4 < 2 {
			t.Fatalf("segment of length %d has no unused bits", len(seg))
		}
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alphabet[i^1])
	}

	cases := []struct {
		name string
		tok  string
	}{
		// JW-01: the algorithm and the key are ours to choose, never the token's.
		{"alg none with an empty signature", vtInput(t, hdr("none", kid), e.claims()) + "."},
		{"alg none with a signature", vtInput(t, hdr("none", kid), e.claims()) + "." + vs},
		{"alg None", vtInput(t, hdr("None", kid), e.claims()) + "." + vs},
		{"HS256 keyed with the PEM public key", vtSignHS256(t, pemBytes, hdr("HS256", kid), e.claims())},
		{"HS256 keyed with the DER public key", vtSignHS256(t, der, hdr("HS256", kid), e.claims())},
		{"HS256 keyed with the JWK JSON", vtSignHS256(t, ringJWK, hdr("HS256", kid), e.claims())},
		{"HS256 keyed with the EC x coordinate", vtSignHS256(t, xRaw, hdr("HS256", kid), e.claims())},
		{"HS256 keyed with the base64 x coordinate", vtSignHS256(t, []byte(xy.X), hdr("HS256", kid), e.claims())},
		{"HS512", vtSignHS256(t, der, hdr("HS512", kid), e.claims())},
		{"an unknown alg", vtSignEC(t, ec, crypto.SHA256, hdr("ES256K", vtECKID), e.claims())},
		{"alg in lower case", vtSignEC(t, ec, crypto.SHA256, hdr("es256", vtECKID), e.claims())},
		{"ES384 on our P-256 kid (not on the allowlist)", vtSignEC(t, ec, crypto.SHA384, hdr("ES384", vtECKID), e.claims())},
		{"RS256 with an EC kid", vtSignRSA(t, rk, hdr("RS256", vtECKID), e.claims())},
		{"RS256 with the ring's EC kid", vtSignRSA(t, rk, hdr("RS256", kid), e.claims())},
		{"ES256 with an RSA kid", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", vtRSAKID), e.claims())},
		{"PS256 on an RS256 key", vtSignRSA(t, rk, hdr("PS256", vtRSAKID), e.claims())},

		// JW-02: only access tokens.
		{"typ JWT", e.signRing("JWT", e.claims())},
		{"no typ", e.signRing("", e.claims())},
		{"typ of an mfa token", e.signRing("mfa+jwt", e.claims())},
		{"typ at+jwt with trailing space", e.signRing("at+jwt ", e.claims())},
		{"typ not a string", vtSignEC(t, ec, crypto.SHA256, `{"alg":"ES256","kid":"test-ec","typ":1}`, e.claims())},

		// JW-03: claims, checked after the signature; any failure is final.
		{"iss with a trailing slash", e.signRing("at+jwt", with("iss", vtIssuer+"/"))},
		{"iss in another case", e.signRing("at+jwt", with("iss", strings.ToUpper(vtIssuer)))},
		{"no iss", e.signRing("at+jwt", without("iss"))},
		{"no aud", e.signRing("at+jwt", without("aud"))},
		{"aud of another resource server", e.signRing("at+jwt", with("aud", "https://other.test"))},
		{"aud array without us", e.signRing("at+jwt", with("aud", []string{"other"}))},
		{"aud empty array", e.signRing("at+jwt", with("aud", []string{}))},
		{"aud array with a number", e.signRing("at+jwt", with("aud", []any{vtAudience, 1}))},
		{"aud null", e.signRing("at+jwt", with("aud", nil))},
		{"exp beyond the skew", e.signRing("at+jwt", with("exp", now-6))},
		{"exp exactly at the skew", e.signRing("at+jwt", with("exp", now-5))},
		{"nbf beyond the skew", e.signRing("at+jwt", with("nbf", now+6))},
		{"iat beyond the skew", e.signRing("at+jwt", with("iat", now+6))},
		{"no sub", e.signRing("at+jwt", without("sub"))},
		{"empty sub", e.signRing("at+jwt", with("sub", ""))},
		{"no client_id", e.signRing("at+jwt", without("client_id"))},
		{"no jti", e.signRing("at+jwt", without("jti"))},
		{"no exp", e.signRing("at+jwt", without("exp"))},
		{"exp as a string", e.signRing("at+jwt", with("exp", "9999999999"))},
		{"exp null", e.signRing("at+jwt", with("exp", nil))},
		{"exp out of range", e.signRing("at+jwt", with("exp", json.Number("1e400")))},
		{"nbf as a string", e.signRing("at+jwt", with("nbf", "0"))},
		{"sub as a number", e.signRing("at+jwt", with("sub", 42))},
		{"perms as a string", e.signRing("at+jwt", with("perms", "admin"))},
		{"once as a string", e.signRing("at+jwt", with("once", "true"))},
		{"EXP in upper case instead of exp", e.signRing("at+jwt", func() map[string]any {
			c := without("exp")
			c["EXP"] = now + 600
			return c
		}())},
		{"duplicate sub", e.signRing("at+jwt", strings.Replace(string(vtJSON(t, e.claims())), `"sub":"user-1"`, `"sub":"user-1","sub":"admin"`, 1))},
		{"duplicate unknown claim", e.signRing("at+jwt", strings.Replace(string(vtJSON(t, e.claims())), `{`, `{"x":1,"x":2,`, 1))},
		{"claims not an object", e.signRing("at+jwt", `["iss"]`)},
		{"claims followed by more JSON", e.signRing("at+jwt", string(vtJSON(t, e.claims()))+`{}`)},
		{"claims with invalid UTF-8", e.signRing("at+jwt", strings.Replace(string(vtJSON(t, e.claims())), "user-1", "user-\xff", 1))},
		{"expired and with a bad signature", expiredBadSig},

		// JW-04: keys come from the pinned JWKS only.
		{"embedded jwk with the attacker's key", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "evil", "jwk", json.RawMessage(attackerJWK)), e.claims())},
		{"embedded jwk under our kid", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", kid, "jwk", json.RawMessage(attackerJWK)), e.claims())},
		{"jku to the attacker", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "evil", "jku", attackerSrv.URL), e.claims())},
		{"x5u to the attacker", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "evil", "x5u", attackerSrv.URL), e.claims())},
		{"jku to the attacker under our kid", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", kid, "jku", attackerSrv.URL), e.claims())},
		{"x5c chain", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", kid, "x5c", []string{"MIIB"}), e.claims())},
		{"attacker key, attacker kid", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "evil"), e.claims())},
		{"attacker key, our kid", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", kid), e.claims())},
		{"kid path traversal", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "../../dev/null"), e.claims())},
		{"kid SQL injection", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "' OR 1=1--"), e.claims())},
		{"kid of 10 KiB", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", strings.Repeat("k", 10<<10)), e.claims())},
		{"kid of 300 bytes", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", strings.Repeat("k", 300)), e.claims())},
		{"kid NUL", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", "\u0000"), e.claims())},
		{"kid with a newline", vtSignEC(t, attacker, crypto.SHA256, hdr("ES256", kid+"\n"), e.claims())},
		{"no kid", vtSignEC(t, ec, crypto.SHA256, map[string]any{"alg": "ES256", "typ": "at+jwt"}, e.claims())},
		{"empty kid", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", ""), e.claims())},
		{"kid not a string", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", "x", "kid", 7), e.claims())},
		{"a kid whose key claims ES384 but is P-256", vtSignEC(t, ec, crypto.SHA384, hdr("ES384", "p256-claims-es384"), e.claims())},

		// JW-05: shape, encodings and signatures.
		{"crit", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", vtECKID, "crit", []string{"exp"}, "exp", 1), e.claims())},
		{"b64 false", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", vtECKID, "b64", false, "crit", []string{"b64"}), e.claims())},
		{"zip", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", vtECKID, "zip", "DEF"), e.claims())},
		{"enc", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", vtECKID, "enc", "A256GCM"), e.claims())},
		{"cty", vtSignEC(t, ec, crypto.SHA256, hdr("ES256", vtECKID, "cty", "JWT"), e.claims())},
		{"duplicate alg", vtSignEC(t, ec, crypto.SHA256, `{"alg":"ES256","alg":"none","kid":"test-ec","typ":"at+jwt"}`, e.claims())},
		{"ALG in upper case", vtSignEC(t, ec, crypto.SHA256, `{"ALG":"ES256","kid":"test-ec","typ":"at+jwt"}`, e.claims())},
		{"header followed by more JSON", vtSignEC(t, ec, crypto.SHA256, `{"alg":"ES256","kid":"test-ec","typ":"at+jwt"}{}`, e.claims())},
		{"header an array", vtSignEC(t, ec, crypto.SHA256, `["ES256"]`, e.claims())},
		{"header with invalid UTF-8", vtSignEC(t, ec, crypto.SHA256, "{\"alg\":\"ES256\",\"kid\":\"test-ec\",\"typ\":\"at+jwt\",\"\xff\":1}", e.claims())},
		{"header not JSON", "bm90IGpzb24." + vp + "." + vs},
		{"JWE with five segments", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM","kid":"`+kid+`"}`)) + ".ZW5j.aXY.Y3Q.dGFn"},
		{"JWE with dir and an empty key", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"dir","enc":"A128GCM"}`)) + "..aXY.Y3Q.dGFn"},
		{"four segments", valid + ".x"},
		{"two segments", vh + "." + vp},
		{"one segment", vh},
		{"empty", ""},
		{"only dots", ".."},
		{"empty header", "." + vp + "." + vs},
		{"empty payload", vh + ".." + vs},
		{"1 MiB of dots", strings.Repeat(".", 1<<20)},
		{"a token just over 8 KiB", valid + strings.Repeat("A", 8<<10)},
		{"a validly signed token over 8 KiB", e.signRing("at+jwt", with("pad", strings.Repeat("p", 7<<10)))},
		{"signature truncated by a byte", vh + "." + vp + "." + base64.RawURLEncoding.EncodeToString(sig[:63])},
		{"signature extended by a byte", vh + "." + vp + "." + base64.RawURLEncoding.EncodeToString(append(sig[:64:64], 0))},
		{"signature truncated by a character", valid[:len(valid)-1]},
		{"signature extended by a character", valid + "A"},
		{"signature with stray trailing bits", valid[:len(valid)-1] + string(valid[len(valid)-1]+1)},
		{"signature in DER", vh + "." + vp + "." + base64.RawURLEncoding.EncodeToString(derSig)},
		{"r = 0, s = 0", rs(big.NewInt(0), big.NewInt(0))},
		{"r = 0", rs(big.NewInt(0), realS)},
		{"s = 0", rs(realR, big.NewInt(0))},
		{"r = n", rs(curveN, realS)},
		{"s = n", rs(realR, curveN)},
		{"r = s = n", rs(curveN, curveN)},
		{"r = n + 1", rs(new(big.Int).Add(curveN, big.NewInt(1)), realS)},
		{"s = n + 1", rs(realR, new(big.Int).Add(curveN, big.NewInt(1)))},
		{"signature of another token", func() string { o, _ := e.mint(); _, _, s := vtSegments(o); return vh + "." + vp + "." + s }()},
		{"payload of another token", func() string { o, _ := e.mint(); _, p, _ := vtSegments(o); return vh + "." + p + "." + vs }()},
		{"padded signature", valid + "=="},
		{"padded header", vh + "=." + vp + "." + vs},
		{"padded payload", vh + "." + vp + "==." + vs},
		{"standard base64 alphabet", sigWithAlphabet},
		{"validly signed padded header", vtSignECInput(t, ec, padded(ecHeader)+"."+ecPayload)},
		{"validly signed padded payload", vtSignECInput(t, ec, ecHeader+"."+padded(ecPayload))},
		{"validly signed payload in the standard alphabet", vtSignECInput(t, ec, ecHeader+"."+stdAlphabetPayload)},
		{"validly signed header with stray bits", vtSignECInput(t, ec, strayBits(ecHeader)+"."+ecPayload)},
		{"validly signed payload with stray bits", vtSignECInput(t, ec, ecHeader+"."+strayBits(ecPayload))},
		{"whitespace around", " " + valid + " "},
		{"a bearer prefix", "Bearer " + valid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.mustRefuse(tc.tok)
		})
	}
	e.t = t
	// The control for the "validly signed" encodings: canonical ones verify.
	e.mustVerify(vtSignECInput(t, ec, ecHeader+"."+ecPayload))
	if n := attackerHits.Load(); n != 0 {
		t.Fatalf("the verifier fetched from a URL named by a token %d times", n)
	}
	if n := e.jwks.hits.Load(); n > 2 {
		t.Fatalf("the corpus caused %d JWKS fetches, want at most 2 (start + one refetch)", n)
	}
	e.mustVerify(valid)
}

func vtFlipB64(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// TestVerifierRefusesAnAlgorithmThatDoesNotMatchTheKey allows ES384 so that the refusal of an
// ES384 header on a P-256 key comes from the key binding, not from the allowlist: jwx verifies
// that signature if asked to.
func TestVerifierRefusesAnAlgorithmThatDoesNotMatchTheKey(t *testing.T) {
	e := newVTEnv(t, vtConfig{alg: keys.ES256, verifier: func(o *tokens.VerifierOptions) {
		o.Algorithms = []string{"ES256", "ES384", "RS256"}
	}})
	ec, rk := vtTestKeys()
	kid := e.ringKID()
	for name, tok := range map[string]string{
		"ES384 header on our ES256 P-256 kid":     vtSignEC(t, ec, crypto.SHA384, map[string]any{"alg": "ES384", "kid": vtECKID, "typ": "at+jwt"}, e.claims()),
		"ES384 on a P-256 key published as ES384": vtSignEC(t, ec, crypto.SHA384, map[string]any{"alg": "ES384", "kid": "p256-claims-es384", "typ": "at+jwt"}, e.claims()),
		"RS256 header with the ring's EC kid":     vtSignRSA(t, rk, map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}, e.claims()),
	} {
		t.Run(name, func(t *testing.T) {
			e.t = t
			e.mustRefuse(tok)
		})
	}
	e.t = t
	// The test keys themselves are fine under their own algorithms.
	e.mustVerify(vtSignEC(t, ec, crypto.SHA256, map[string]any{"alg": "ES256", "kid": vtECKID, "typ": "at+jwt"}, e.claims()))
	e.mustVerify(vtSignRSA(t, rk, map[string]any{"alg": "RS256", "kid": vtRSAKID, "typ": "at+jwt"}, e.claims()))
}

func TestNewVerifierRefusesUnsafeOptions(t *testing.T) {
	base := tokens.VerifierOptions{JWKSURL: "https://auth.test/jwks.json", Issuer: vtIssuer, Audience: vtAudience}
	for name, tweak := range map[string]func(*tokens.VerifierOptions){
		"HS256 allowed":       func(o *tokens.VerifierOptions) { o.Algorithms = []string{"ES256", "HS256"} },
		"none allowed":        func(o *tokens.VerifierOptions) { o.Algorithms = []string{"none"} },
		"an unknown alg":      func(o *tokens.VerifierOptions) { o.Algorithms = []string{"ES256K"} },
		"no JWKS URL":         func(o *tokens.VerifierOptions) { o.JWKSURL = "" },
		"a relative URL":      func(o *tokens.VerifierOptions) { o.JWKSURL = "/jwks.json" },
		"a file URL":          func(o *tokens.VerifierOptions) { o.JWKSURL = "file:///etc/passwd" },
		"no issuer":           func(o *tokens.VerifierOptions) { o.Issuer = "" },
		"no audience":         func(o *tokens.VerifierOptions) { o.Audience = "" },
		"a negative skew":     func(o *tokens.VerifierOptions) { o.Skew = -time.Second },
		"a skew over 1m":      func(o *tokens.VerifierOptions) { o.Skew = 2 * time.Minute },
		"a negative cooldown": func(o *tokens.VerifierOptions) { o.RefetchCooldown = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			o := base
			tweak(&o)
			if v, err := tokens.NewVerifier(t.Context(), o); err == nil {
				t.Fatalf("NewVerifier accepted %+v (%v)", o, v)
			}
		})
	}
}

// TestVerifierRefusesOneMebibyteOfDotsCheaply: JW-05 wants < 5 ms and < 64 KiB per refusal.
func TestVerifierRefusesOneMebibyteOfDotsCheaply(t *testing.T) {
	e := newVTEnv(t, vtConfig{alg: keys.ES256})
	dots := strings.Repeat(".", 1<<20)
	const runs = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range runs {
		e.mustRefuse(dots)
	}
	elapsed := time.Since(start) / runs
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / runs; perCall >= 64<<10 {
		t.Fatalf("refusing 1 MiB of dots allocates %d bytes per call", perCall)
	}
	if elapsed > 5*time.Millisecond {
		t.Fatalf("refusing 1 MiB of dots takes %v per call", elapsed)
	}
	if a := testing.AllocsPerRun(100, func() { e.v.Verify(e.ctx, dots) }); a > 0 {
		t.Fatalf("refusing 1 MiB of dots makes %v allocations", a)
	}
}
