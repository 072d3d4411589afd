package server

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// A token answer is written byte for byte as json.Encoder writes it, for plain values and for
// values that need escaping (quotes, backslashes, HTML and control characters, non-ASCII).
func TestTokenAnswerJSONIsWhatEncodingJSONWrites(t *testing.T) {
	alphabet := []string{"a", "Z", "0", "-", "_", ".", " ", `"`, `\`, "<", ">", "&", "\n", "\x00", "\x7f", "é", "\u2028", "\xff"}
	rng := rand.New(rand.NewPCG(3, 4))
	value := func(plain bool) string {
		var b strings.Builder
		for range rng.IntN(40) {
			if plain {
				b.WriteString(alphabet[rng.IntN(7)])
			} else {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
		}
		return b.String()
	}
	for i := range 5000 {
		plain := i%2 == 0
		a := tokenAnswer{AccessToken: value(plain), TokenType: "Bearer", ExpiresIn: rng.Int64N(1 << 40), Scope: value(plain)}
		if rng.IntN(2) == 0 {
			a.RefreshToken = value(plain)
		}
		if rng.IntN(2) == 0 {
			a.IDToken = value(plain)
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(a); err != nil {
			t.Fatal(err)
		}
		if got := a.appendJSON(nil); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%+v:\n%s\nwant\n%s", a, got, want.Bytes())
		}
	}
}
