package audit

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// The details column is what json.Marshal makes of them, for any value: quotes, backslashes,
// control and HTML characters, line separators, invalid UTF-8.
func TestDetailsJSONIsWhatEncodingJSONWrites(t *testing.T) {
	alphabet := []string{"a", "Z", "0", " ", `"`, `\`, "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "<", ">", "&",
		"é", "ﬀ", "\u2028", "\u2029", "\u202e", "\ufffd", "😀", "\xff", "\xe2\x82", "…"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		d := map[string]string{}
		for _, k := range detailKeys {
			if rng.IntN(2) == 0 {
				var b strings.Builder
				for range rng.IntN(12) {
					b.WriteString(alphabet[rng.IntN(len(alphabet))])
				}
				d[k] = b.String()
			}
		}
		want, err := json.Marshal(d)
		if len(d) == 0 {
			want = []byte("{}")
		}
		if got := detailsJSON(d); err != nil || got != string(want) {
			t.Fatalf("details %q: %s, want %s (err %v)", d, got, want, err)
		}
	}
}
