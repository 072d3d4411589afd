package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// The client IP comes from X-Forwarded-For only through trusted proxies, walking right to left
// (SECURITY.md §3 item 8: a left-most or unconditional XFF lets anyone pick their throttling key).
func TestClientIPBelievesOnlyTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name, remote, xff, want string
	}{
		{"a direct client is its peer address", "203.0.113.7:5000", "", "203.0.113.7"},
		{"a direct client cannot spoof X-Forwarded-For", "203.0.113.7:5000", "1.2.3.4", "203.0.113.7"},
		{"through a trusted proxy the forwarded address counts", "10.0.0.2:5000", "198.51.100.9", "198.51.100.9"},
		{"the right-most untrusted hop wins over spoofed left entries", "10.0.0.2:5000", "1.2.3.4, 198.51.100.9", "198.51.100.9"},
		{"chains of trusted proxies are skipped", "10.0.0.2:5000", "198.51.100.9, 10.0.0.5", "198.51.100.9"},
		{"garbage in the header stops the walk", "10.0.0.2:5000", "nonsense", "10.0.0.2"},
		{"IPv4-mapped IPv6 peers are IPv4", "[::ffff:203.0.113.7]:5000", "", "203.0.113.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if got := clientIP(r, trusted); got != c.want {
				t.Errorf("clientIP = %s, want %s", got, c.want)
			}
		})
	}
}
