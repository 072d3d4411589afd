package identity

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

var testPepper = bytes.Repeat([]byte("p"), MinPepperSize)

func TestDummyHashIsAValidHashThatNeverMatches(t *testing.T) {
	for _, params := range []PasswordParams{{}, {Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}} {
		s := NewService(nil, Options{Pepper: testPepper, Password: params})
		h, err := parsePasswordHash(s.dummyHash)
		if err != nil {
			t.Fatalf("the dummy hash %q does not parse: %v", s.dummyHash, err)
		}
		if h.params != s.params {
			t.Errorf("dummy hash parameters %+v, want the current %+v", h.params, s.params)
		}
		for _, password := range []string{"", "password", "a long enough passphrase"} {
			ok, err := s.verify(t.Context(), h, password)
			if ok || err != nil {
				t.Errorf("verifying %q against the dummy: match %v, error %v; want a mismatch", password, ok, err)
			}
		}
	}
	s := NewService(nil, Options{Pepper: testPepper})
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(s.dummyHash) {
		t.Errorf("dummy hash %q is not in the format of real ones", s.dummyHash)
	}
}

func TestPasswordHashRoundTrip(t *testing.T) {
	s := NewService(nil, Options{Pepper: testPepper, Password: PasswordParams{Memory: 64, Time: 1, Threads: 2, SaltLen: 8, KeyLen: 16}})
	hash, err := s.hashPassword(t.Context(), "a long enough passphrase")
	if err != nil {
		t.Fatal(err)
	}
	h, err := parsePasswordHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	if h.params != s.params || h.String() != hash {
		t.Errorf("parsed %+v from %q", h, hash)
	}
	if ok, err := s.verify(t.Context(), h, "a long enough passphrase"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	if ok, err := s.verify(t.Context(), h, "a long enough passphrasE"); ok || err != nil {
		t.Errorf("wrong password: %v, %v", ok, err)
	}
}

func TestParsePasswordHashRefusesMalformedStrings(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	valid := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := parsePasswordHash(valid); err != nil {
		t.Fatalf("valid hash refused: %v", err)
	}
	for name, s := range map[string]string{
		"empty":                     "",
		"argon2i":                   strings.Replace(valid, "argon2id", "argon2i", 1),
		"bcrypt":                    "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"version 16":                strings.Replace(valid, "v=19", "v=16", 1),
		"no version":                "$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"parameters out of order":   strings.Replace(valid, "m=64,t=1,p=1", "t=1,m=64,p=1", 1),
		"a missing parameter":       strings.Replace(valid, "m=64,t=1,p=1", "m=64,t=1", 1),
		"an extra parameter":        strings.Replace(valid, "m=64,t=1,p=1", "m=64,t=1,p=1,k=2", 1),
		"a negative parameter":      strings.Replace(valid, "t=1", "t=-1", 1),
		"zero passes":               strings.Replace(valid, "t=1", "t=0", 1),
		"memory below 8 per lane":   strings.Replace(valid, "m=64,t=1,p=1", "m=64,t=1,p=9", 1),
		"absurd memory":             strings.Replace(valid, "m=64", "m=4294967295", 1),
		"padded salt":               strings.Replace(valid, salt, salt+"=", 1),
		"URL-safe base64":           strings.Replace(valid, key, strings.ReplaceAll(key, "a", "-"), 1),
		"a short key":               "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5",
		"a trailing field":          valid + "$x",
		"a missing leading dollar":  valid[1:],
		"spaces around the numbers": strings.Replace(valid, "m=64", "m= 64", 1),
	} {
		if _, err := parsePasswordHash(s); err == nil {
			t.Errorf("%s: %q parsed", name, s)
		}
	}
}

func TestCommonPasswordList(t *testing.T) {
	set := commonPasswords()
	if len(set) < 3000 {
		t.Errorf("%d common passwords, want at least 3000", len(set))
	}
	for p := range set {
		if p != strings.ToLower(p) || strings.TrimSpace(p) != p || p == "" || strings.HasPrefix(p, "#") {
			t.Errorf("entry %q is not a lower-case, trimmed password", p)
		}
	}
	for _, p := range []string{"password123", "12345678", "iloveyou", "Password", "QWERTY123", "letmein!", "dragon2024"} {
		if !isCommonPassword(p) {
			t.Errorf("%q is not common", p)
		}
	}
	for _, p := range []string{"qzjmxkwvbrtplfn", "correct horse battery staple", "8271-4409 5513"} {
		if isCommonPassword(p) {
			t.Errorf("%q is common", p)
		}
	}
}

// BenchmarkHashDefault measures one argon2id evaluation at the default parameters: the cost of a
// password login, and, over all slots, how many of them a server can take per second.
func BenchmarkHashDefault(b *testing.B) {
	s := NewService(nil, Options{Pepper: testPepper})
	h, err := parsePasswordHash(s.dummyHash)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("one at a time", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.verify(b.Context(), h, "a long enough passphrase"); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
	})
	b.Run("all slots", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.verify(b.Context(), h, "a long enough passphrase"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
	})
}
