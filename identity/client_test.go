package identity_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
)

func TestClientAllowsGrant(t *testing.T) {
	tests := []struct {
		name   string
		grants []string
		grant  string
		want   bool
	}{
		{"a registered grant is allowed", []string{identity.GrantClientCredentials}, identity.GrantClientCredentials, true},
		{"an unregistered grant is refused", []string{identity.GrantClientCredentials}, identity.GrantPassword, false},
		{"the password grant brings the MFA step with it", []string{identity.GrantPassword}, identity.GrantMFA, true},
		{"the MFA step needs the password grant", []string{identity.GrantClientCredentials, identity.GrantRefreshToken}, identity.GrantMFA, false},
		{"the MFA grant alone does not allow passwords", []string{identity.GrantMFA}, identity.GrantPassword, false},
		{"an empty grant name is refused", []string{identity.GrantPassword}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := identity.Client{Grants: tt.grants}
			if got := c.AllowsGrant(tt.grant); got != tt.want {
				t.Errorf("AllowsGrant(%q) with %v = %v, want %v", tt.grant, tt.grants, got, tt.want)
			}
		})
	}
}

func TestClientAllowsScopes(t *testing.T) {
	machine := identity.Client{Grants: []string{identity.GrantClientCredentials}, Scopes: []string{"results:read", "results:write"}}
	app := identity.Client{Grants: []string{identity.GrantPassword, identity.GrantRefreshToken}, Scopes: []string{"results:read"}}
	tests := []struct {
		name      string
		client    identity.Client
		requested []string
		want      bool
	}{
		{"asking for nothing is allowed", machine, nil, true},
		{"a registered scope is allowed", machine, []string{"results:read"}, true},
		{"all registered scopes are allowed", machine, []string{"results:write", "results:read"}, true},
		{"an unregistered scope is refused", machine, []string{"admin"}, false},
		{"one unregistered scope among registered ones is refused", machine, []string{"results:read", "admin"}, false},
		{"scopes match exactly, not by prefix", machine, []string{"results"}, false},
		{"scopes match case-sensitively", machine, []string{"Results:read"}, false},
		{"a password client may always ask for openid profile email", app, []string{"openid", "profile", "email", "results:read"}, true},
		{"a client without the password grant may not ask for openid unregistered", machine, []string{"openid"}, false},
		{"a password client may not ask for other unregistered scopes", app, []string{"results:write"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.client.AllowsScopes(tt.requested); got != tt.want {
				t.Errorf("AllowsScopes(%v) = %v, want %v", tt.requested, got, tt.want)
			}
		})
	}
}

func TestClientJSON(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := identity.Client{
		ID:         "01956a2e-0000-7000-8000-000000000001",
		Name:       "Back office",
		Grants:     []string{identity.GrantPassword},
		AccessTTL:  15 * time.Minute,
		CreatedAt:  created,
		UpdatedAt:  created,
		SecretHash: []byte("do not print me"),
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"client_id":"01956a2e-0000-7000-8000-000000000001","name":"Back office","public":false,` +
		`"grants":["password"],"scopes":[],"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z",` +
		`"access_ttl":"15m0s"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if strings.Contains(string(b), "secret") || strings.Contains(string(b), "print me") {
		t.Errorf("the secret hash was serialised: %s", b)
	}

	var back identity.Client
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	c.SecretHash, c.Scopes = nil, []string{}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got %#v\nwant %#v", back, c)
	}

	if err := json.Unmarshal([]byte(`{"refresh_ttl":"forever"}`), &back); err == nil {
		t.Error("an invalid duration was accepted")
	}
}
