package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/internal/audit"
)

// securityEvents waits until the audit log holds at least n security events that keep accepts
// (they are stored in batches within 100 ms) and returns them, oldest first.
func (f *fixture) securityEvents(t *testing.T, n int, keep func(audit.Event) bool) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var all []audit.Event
		q := audit.Query{Platform: true, Limit: audit.MaxLimit}
		for {
			page, next, err := f.audit.List(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, page...)
			if next == "" {
				break
			}
			q.Cursor = next
		}
		var security []audit.Event
		for i := len(all) - 1; i >= 0; i-- {
			if !strings.HasPrefix(all[i].Type, "result.") && all[i].Type != audit.AuditRead && keep(all[i]) {
				security = append(security, all[i])
			}
		}
		if len(security) >= n || time.Now().After(deadline) {
			return security
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func notTokenEndpoint(e audit.Event) bool { return e.Route != "/oauth/token" }

// AU-01: each security event of the account and resource APIs, done once, leaves exactly one
// event of its type, with who, whom, organization, route, request id, client IP and a UTC time.
func TestSecurityEventsAreAudited(t *testing.T) {
	f := newOrgFixture(t)
	anaID := f.user.ID
	member := f.userID(t, memberAEmail)
	origin := []string{"Origin", f.issuer}

	// Cookie logins: a wrong password, then a success; logout.
	f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": "wrong password!"}, nil, origin...)
	_, cookies := f.cookieLogin(t)
	f.api(t, "POST", "/api/auth/logout", nil, cookies, origin...)
	// A reset asked for a known and an unknown address, and completed.
	f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": "ana@acme.test"}, nil, origin...)
	f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": "nobody@acme.test"}, nil, origin...)
	code := codeIn(t, f.mailsTo(t, "ana@acme.test", "/reset-password#", 1)[0])
	const reset = "uma frase-senha redefinida"
	if res, body := f.api(t, "POST", "/api/auth/password/reset", map[string]string{"email": "ana@acme.test", "token": code,
		"new_password": reset, "new_password_confirm": reset}, nil, origin...); res.StatusCode != 204 {
		t.Fatalf("reset: %d %v", res.StatusCode, body)
	}
	// Administration: permissions, expiry, deactivation, support's revocation, an organization.
	f.as(t, "org admin of A", "PUT", "/api/users/"+member+"/permissions", map[string]any{"permissions": []string{"users:read", "groups:read"}})
	f.as(t, "org admin of A", "POST", "/api/users/"+member+"/password/expire", nil)
	f.as(t, "support", "POST", "/api/auth/sessions/revoke", map[string]string{"user_id": anaID})
	f.as(t, "org admin of A", "POST", "/api/users/"+member+"/deactivate", nil)
	f.as(t, "platform admin", "POST", "/api/organizations/"+f.orgB.ID+"/deactivate", nil)

	want := []struct {
		typ, outcome, subject, org string
	}{
		{audit.LoginFailed, audit.OutcomeFailure, "", ""},
		{audit.LoginSucceeded, audit.OutcomeSuccess, anaID, f.orgA.ID},
		{audit.TokenIssued, audit.OutcomeSuccess, anaID, f.orgA.ID},
		{audit.SessionRevoked, audit.OutcomeSuccess, anaID, f.orgA.ID},
		{audit.PasswordResetRequested, audit.OutcomeSuccess, anaID, f.orgA.ID},
		{audit.PasswordResetRequested, audit.OutcomeFailure, "", ""},
		{audit.PasswordResetCompleted, audit.OutcomeSuccess, anaID, f.orgA.ID},
		{audit.PermissionsChanged, audit.OutcomeSuccess, member, f.orgA.ID},
		{audit.PasswordExpired, audit.OutcomeSuccess, member, f.orgA.ID},
		{audit.SessionRevoked, audit.OutcomeSuccess, anaID, f.orgA.ID},
		{audit.UserDeactivated, audit.OutcomeSuccess, member, f.orgA.ID},
		{audit.OrgDeactivated, audit.OutcomeSuccess, f.orgB.ID, f.orgB.ID},
	}
	// The fixture's own logins (password grants) are not the scenario's.
	scenario := f.securityEvents(t, len(want), notTokenEndpoint)
	if len(scenario) != len(want) {
		for _, e := range scenario {
			t.Logf("%s %s %s", e.Type, e.Outcome, e.Route)
		}
		t.Fatalf("%d events, want %d", len(scenario), len(want))
	}
	for i, w := range want {
		e := scenario[i]
		if e.Type != w.typ || e.Outcome != w.outcome || e.SubjectID != w.subject || e.OrgID != w.org {
			t.Errorf("event %d: %s %s subject %q org %q, want %s %s %q %q", i, e.Type, e.Outcome, e.SubjectID, e.OrgID, w.typ, w.outcome, w.subject, w.org)
		}
		if e.Route == "" || e.RequestID == "" || e.IP == "" || e.At.Location() != time.UTC || !strings.HasSuffix(e.At.Format(time.RFC3339Nano), "Z") {
			t.Errorf("event %d (%s) lacks request fields: %+v", i, e.Type, e)
		}
	}
	if d := scenario[2].Details; d["grant"] != "cookie_login" || d["jti"] == "" || d["family"] == "" {
		t.Errorf("cookie login's token details %v", d)
	}
	if d := scenario[7].Details; d["before"] != "users:read" || d["after"] != "users:read groups:read" {
		t.Errorf("permission change details %v", d)
	}
	if scenario[9].ActorID != f.userID(t, "user4@example.test") {
		t.Errorf("support's revocation names actor %q", scenario[8].ActorID)
	}
}

// AU-01: refused attempts are events too: an escalation and support acting beyond its role.
func TestRefusedSecurityActionsAreAudited(t *testing.T) {
	f := newOrgFixture(t)
	member := f.userID(t, memberAEmail)
	if res, _ := f.as(t, "org admin of A", "PUT", "/api/users/"+member+"/permissions", map[string]any{"permissions": []string{"support"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("escalation: %d", res.StatusCode)
	}
	if res, _ := f.as(t, "member of A", "POST", "/api/auth/sessions/revoke", map[string]string{"user_id": member}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("revoke without support: %d", res.StatusCode)
	}
	var got []string
	for _, e := range f.securityEvents(t, 2, notTokenEndpoint) {
		got = append(got, e.Type+" "+e.Outcome)
	}
	want := []string{audit.PermissionsChanged + " denied", audit.SessionRevoked + " denied"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", got, want)
	}
	if u, _ := f.ids.User(context.Background(), member); len(u.Permissions) != 1 || u.Permissions[0] != identity.PermUsersRead {
		t.Errorf("permissions changed: %v", u.Permissions)
	}
}

// AU-01: a refresh token replayed after its grace window revokes the session and leaves a
// refresh.reuse_detected event naming the family.
func TestRefreshReuseIsAudited(t *testing.T) {
	f := newLoginFixture(t)
	tok := f.login(t)
	if res, body := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 200 {
		t.Fatalf("refresh: %d %v", res.StatusCode, body)
	}
	f.clock.Advance(time.Minute) // past the grace window
	if res, _ := f.refresh(t, tok.RefreshToken, ""); res.StatusCode != 400 {
		t.Fatalf("replay: %d", res.StatusCode)
	}
	var reuse []audit.Event
	for _, e := range f.securityEvents(t, 1, func(e audit.Event) bool { return e.Type == audit.RefreshReuseDetected }) {
		reuse = append(reuse, e)
	}
	if len(reuse) != 1 || reuse[0].SubjectID != f.user.ID || reuse[0].Details["family"] == "" || reuse[0].Outcome != audit.OutcomeDenied {
		t.Errorf("reuse events %+v", reuse)
	}
}

// AU-01 at the token endpoint: password-grant logins (failed and succeeded), every access token
// minted for a user (password and refresh grants, each with its jti, grant and family) and a
// revocation by the client are stored, and each is one log line with the same fields. A
// client_credentials token is its access-log line, naming the client and the jti.
func TestTokenEndpointEventsAreAudited(t *testing.T) {
	logs := &logBuffer{}
	f := newLoginFixture(t, withLogs(logs))
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", "wrong password!"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	tok := f.login(t)
	res, body := f.refresh(t, tok.RefreshToken, "")
	if res.StatusCode != 200 {
		t.Fatalf("refresh: %d %v", res.StatusCode, body)
	}
	machine, machineToken := f.machineToken(t)
	if res := f.post(t, "/oauth/revoke", "token="+str(body["refresh_token"]), f.app.ID, f.appSecret); res.StatusCode != 200 {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	events := f.securityEvents(t, 5, func(audit.Event) bool { return true })
	var got []string
	for _, e := range events {
		got = append(got, e.Type+" "+e.Outcome)
	}
	want := []string{
		audit.LoginFailed + " failure", audit.LoginSucceeded + " success", audit.TokenIssued + " success",
		audit.TokenRefreshed + " success", audit.TokenRevoked + " success",
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stored events %v, want %v", got, want)
	}
	issued, refreshed, revoked := events[2], events[3], events[4]
	checkTokenEvent(t, issued, "password", tok.AccessToken, f.user.ID, f.app.ID)
	checkTokenEvent(t, refreshed, "refresh_token", str(body["access_token"]), f.user.ID, f.app.ID)
	if issued.Details["family"] == "" || refreshed.Details["family"] != issued.Details["family"] {
		t.Errorf("families: issued %q, refreshed %q", issued.Details["family"], refreshed.Details["family"])
	}
	if revoked.Details["family"] != issued.Details["family"] {
		t.Errorf("the revocation names family %q, want %q", revoked.Details["family"], issued.Details["family"])
	}
	// Each stored event is also its log line, with the same id and fields (the sink's copy).
	for _, e := range events {
		var line map[string]any
		for _, l := range auditLines(t, logs, e.Type) {
			if l["id"] == e.ID {
				line = l
			}
		}
		details, _ := line["details"].(map[string]any)
		if line == nil || line["outcome"] != e.Outcome || line["client_id"] != e.ClientID || line["request_id"] != e.RequestID ||
			str(details["jti"]) != e.Details["jti"] {
			t.Errorf("%s %s: log line %v", e.Type, e.ID, line)
		}
	}
	// The machine token: no audit event, one access-log line with its client and jti.
	if n := len(auditLines(t, logs, audit.TokenIssued)); n != 1 {
		t.Errorf("%d token.issued log lines, want 1 (the password login's)", n)
	}
	_, claims := jwtParts(t, machineToken)
	var machineLines int
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		json.Unmarshal([]byte(line), &l)
		if l["msg"] == "request" && l["client_id"] == machine && l["jti"] == claims["jti"] && l["route"] == "/oauth/token" && l["status"] == float64(200) {
			machineLines++
		}
	}
	if machineLines != 1 {
		t.Errorf("%d access-log lines naming the client_credentials client and jti, want 1", machineLines)
	}
}

// With PORTARIA_AUDIT_CLIENT_TOKENS, each client_credentials token is a stored audit event: the
// client is the actor, with the token's jti, grant and scope, and no family.
func TestClientTokensAuditedWhenAsked(t *testing.T) {
	f := newLoginFixture(t, withClientTokenAudit())
	machine, machineToken := f.machineToken(t)
	events := f.securityEvents(t, 1, func(e audit.Event) bool { return e.ClientID == machine })
	if len(events) != 1 || events[0].Type != audit.TokenIssued {
		t.Fatalf("events of the machine client: %+v", events)
	}
	checkTokenEvent(t, events[0], "client_credentials", machineToken, "", machine)
	if events[0].Details["family"] != "" || events[0].Route != "/oauth/token" || events[0].OrgID != "" {
		t.Errorf("machine token event %+v", events[0])
	}
}

// machineToken registers a client_credentials client and gets a token for it.
func (f *loginFixture) machineToken(t *testing.T) (clientID, token string) {
	t.Helper()
	machine, secret := f.client(t, identity.NewClient{Name: "svc", Grants: []string{"client_credentials"}, Scopes: []string{"reports"}})
	res := f.post(t, "/oauth/token", "grant_type=client_credentials&scope=reports", machine.ID, secret)
	if res.StatusCode != 200 {
		t.Fatalf("client_credentials: %d", res.StatusCode)
	}
	return machine.ID, str(decode(t, res)["access_token"])
}

// checkTokenEvent checks a token event against the token it is about: its jti and scope, the
// grant, the actor (also the subject) and the client.
func checkTokenEvent(t *testing.T, e audit.Event, grant, token, actor, clientID string) {
	t.Helper()
	_, claims := jwtParts(t, token)
	if e.Details["grant"] != grant || e.Details["jti"] == "" || e.Details["jti"] != claims["jti"] || e.Details["scope"] != claims["scope"] ||
		e.ActorID != actor || e.SubjectID != actor || e.ClientID != clientID || e.Outcome != audit.OutcomeSuccess {
		t.Errorf("%s event %+v, for a token with claims %v", grant, e, claims)
	}
}

// auditLines returns the audit log lines of type typ, decoded.
func auditLines(t *testing.T, logs *logBuffer, typ string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["msg"] == "audit" && l["type"] == typ {
			lines = append(lines, l)
		}
	}
	return lines
}
