package server_test

// The seed documents (shared/seeds, SPEC §7) describe five existing systems whose account and
// token capabilities Portaria must offer through its own API. Each test below walks one document
// end to end through the HTTP API, with real clients, in the order a user of that system would.
// Where a document does something Portaria deliberately does otherwise, the comment says so and
// the test follows SPEC. Resource-API capabilities (SPEC §5) are subtests skipped until that work
// lands, so that they show in the test output without a fake assertion.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/portaria/portaria/identity"
	"github.com/portaria/portaria/identity/mail"
)

// seedBrowser is a browser on the account API: a cookie jar that keeps and drops cookies as a
// browser does (paths, Max-Age), and the issuer's Origin on every request, as a first-party page
// sends it.
type seedBrowser struct {
	f      *loginFixture
	jar    *cookiejar.Jar
	client *http.Client
}

func newSeedBrowser(t *testing.T, f *loginFixture) *seedBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &seedBrowser{f: f, jar: jar, client: &http.Client{Jar: jar}}
}

func (b *seedBrowser) do(t *testing.T, method, path string, body any, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	return b.f.send(t, b.client, method, path, body, append([]string{"Origin", b.f.issuer}, header...)...)
}

// cookies returns what the browser would send to /api/auth: the access and refresh cookies.
func (b *seedBrowser) cookies(t *testing.T) map[string]*http.Cookie {
	t.Helper()
	u, _ := url.Parse(b.f.srv.URL + "/api/auth/refresh")
	out := map[string]*http.Cookie{}
	for _, c := range b.jar.Cookies(u) {
		out[c.Name] = c
	}
	return out
}

// send is api() with a chosen client: a JSON body, headers in pairs, the decoded JSON answer.
func (f *loginFixture) send(t *testing.T, client *http.Client, method, path string, body any, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res, m
}

// bearer calls the account API with an access token in the Authorization header, as apps do.
func (f *loginFixture) bearer(t *testing.T, method, path string, body any, access string) (*http.Response, map[string]any) {
	t.Helper()
	return f.api(t, method, path, body, nil, "Authorization", "Bearer "+access)
}

// passwordGrant logs email in at the token endpoint with client_secret_basic; extra is appended
// to the form (e.g. "&expires_in=60").
func (f *fixture) passwordGrant(t *testing.T, clientID, secret, email, password, extra string) (*http.Response, map[string]any) {
	t.Helper()
	res := f.post(t, "/oauth/token", "grant_type=password&username="+url.QueryEscape(email)+"&password="+url.QueryEscape(password)+extra, clientID, secret)
	return res, decode(t, res)
}

func (f *fixture) refreshGrant(t *testing.T, clientID, secret, refreshToken, extra string) (*http.Response, map[string]any) {
	t.Helper()
	res := f.post(t, "/oauth/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(refreshToken)+extra, clientID, secret)
	return res, decode(t, res)
}

func (f *fixture) introspect(t *testing.T, clientID, secret, token string) map[string]any {
	t.Helper()
	return decode(t, f.post(t, "/oauth/introspect", "token="+url.QueryEscape(token), clientID, secret))
}

// mailsTo waits until at least n e-mails to `to` whose text contains part are in the outbox and
// returns them, oldest first.
func (f *fixture) mailsTo(t *testing.T, to, part string, n int) []mail.Message {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, err := mail.ReadOutbox(f.outbox)
		var ms []mail.Message
		for _, m := range all {
			if strings.EqualFold(m.To, to) && strings.Contains(m.Text, part) {
				ms = append(ms, m)
			}
		}
		if err == nil && len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d e-mails to %s containing %q, want %d (err %v)", len(ms), to, part, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailCode is the code an account e-mail shows next to its link, in English or Portuguese.
var mailCode = regexp.MustCompile(`(?:code|código): (\S+)`)

func codeIn(t *testing.T, m mail.Message) string {
	t.Helper()
	sub := mailCode.FindStringSubmatch(m.Text)
	if sub == nil {
		t.Fatalf("no code in the e-mail:\n%s", m.Text)
	}
	return sub[1]
}

func lifetime(t *testing.T, access string) float64 {
	t.Helper()
	_, claims := jwtParts(t, access)
	return claims["exp"].(float64) - claims["iat"].(float64)
}

func str(v any) string { s, _ := v.(string); return s }

// userOf returns the "user" object of a me body.
func userOf(me map[string]any) map[string]any { u, _ := me["user"].(map[string]any); return u }

// TestSeedIntegramenteAPIAuth covers 000_06d3a5a2ab1d88d0.txt (IntegramenteAPI), section Auth:
// login, refresh by the refreshToken cookie, me, forgot password, logout that ends the session and
// clears the HttpOnly cookies, and support staff revoking a user's session. Its Usuario section's
// "expire password" and "only the user changes their own password" are covered too; the rest of
// its resource API is SPEC §5, not built yet.
func TestSeedIntegramenteAPIAuth(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	b := newSeedBrowser(t, f)

	// Realiza o login de um usuário: HttpOnly cookies and the me body, no token in the body.
	res, me := b.do(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": userPassword})
	if res.StatusCode != 200 || str(userOf(me)["id"]) != f.user.ID || me["access_token"] != nil {
		t.Fatalf("login: %d %v", res.StatusCode, me)
	}
	for _, name := range []string{"accessToken", "refreshToken"} {
		if c := cookieNamed(res, name); c == nil || !c.HttpOnly {
			t.Errorf("login must set the HttpOnly cookie %s: %+v", name, c)
		}
	}

	// Retorna os dados associados ao usuário autenticado: the cookie alone authenticates.
	res, me = b.do(t, "GET", "/api/auth/me", nil)
	org, _ := me["organization"].(map[string]any)
	session, _ := me["session"].(map[string]any)
	if res.StatusCode != 200 || str(userOf(me)["email"]) != "ana@acme.test" || str(org["id"]) != f.org.ID || str(session["id"]) == "" {
		t.Fatalf("me: %d %v", res.StatusCode, me)
	}
	sid := str(session["id"])

	// Renova a sessão com base no cookie refreshToken: both cookies are replaced, the session stays.
	first := b.cookies(t)
	if res, body := b.do(t, "POST", "/api/auth/refresh", nil); res.StatusCode != 204 {
		t.Fatalf("refresh: %d %v", res.StatusCode, body)
	}
	rotated := b.cookies(t)
	if rotated["refreshToken"] == nil || rotated["refreshToken"].Value == first["refreshToken"].Value ||
		rotated["accessToken"] == nil || rotated["accessToken"].Value == first["accessToken"].Value {
		t.Fatal("refresh must rotate the refresh cookie and set a new access cookie")
	}
	if res, me := b.do(t, "GET", "/api/auth/me", nil); res.StatusCode != 200 || str(me["session"].(map[string]any)["id"]) != sid {
		t.Errorf("me after refresh: %d %v (session %s)", res.StatusCode, me, sid)
	}

	// Realiza o logout: 200 without a body; the session ends server-side and the browser drops
	// both cookies.
	res, body := b.do(t, "POST", "/api/auth/logout", nil)
	if res.StatusCode != 200 || body != nil {
		t.Fatalf("logout: %d %v", res.StatusCode, body)
	}
	if left := b.cookies(t); len(left) != 0 {
		t.Errorf("the browser still holds cookies after logout: %v", left)
	}
	// Cookies copied before the logout are refused: the rotated ones and the first refresh cookie.
	for name, c := range map[string]*http.Cookie{"rotated": rotated["refreshToken"], "first": first["refreshToken"]} {
		if res, body := f.api(t, "POST", "/api/auth/refresh", nil, []*http.Cookie{c}, "Origin", f.issuer); res.StatusCode != 401 {
			t.Errorf("%s refresh cookie after logout: %d %v", name, res.StatusCode, body)
		}
	}
	staleAccess := rotated["accessToken"] // checked below, once the revocation feed is read

	// Solicita o envio de um e-mail com o link para redefinição de senha (a Brazilian product: the
	// e-mail follows Accept-Language). The link points at the issuer and its token resets once.
	res, _ = f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": "ana@acme.test"}, nil, "Accept-Language", "pt-BR,pt;q=0.9")
	if res.StatusCode != 202 {
		t.Fatalf("forgot: %d", res.StatusCode)
	}
	msg := f.mailsTo(t, "ana@acme.test", "/reset-password#", 1)[0]
	if msg.Subject != "Redefina sua senha" || !strings.Contains(msg.Text, f.issuer+"/reset-password#") {
		t.Errorf("reset e-mail: %q\n%s", msg.Subject, msg.Text)
	}
	const afterReset = "uma frase-senha nova e longa"
	reset := map[string]string{"email": "ana@acme.test", "token": extractParam(t, msg.Text, "token"), "new_password": afterReset, "new_password_confirm": afterReset}
	if res, body := f.api(t, "POST", "/api/auth/password/reset", reset, nil); res.StatusCode != 204 {
		t.Fatalf("reset with the e-mailed link: %d %v", res.StatusCode, body)
	}
	f.clock.Advance(10 * time.Millisecond) // sessions started after the reset's revocation mark

	// Revoga a sessão de um usuário específico (permissão de suporte): every session of Ana ends,
	// on every device, while the support user's own session goes on.
	if _, err := f.ids.CreateUser(ctx, identity.NewUser{Email: "suporte@portaria.test", Name: "Suporte", Password: userPassword,
		Active: true, EmailVerified: true, Permissions: []string{identity.PermSupport}}); err != nil {
		t.Fatal(err)
	}
	_, support := f.passwordGrant(t, f.app.ID, f.appSecret, "suporte@portaria.test", userPassword, "")
	supportAccess := str(support["access_token"])
	laptop := newSeedBrowser(t, f)
	if res, body := laptop.do(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": afterReset}); res.StatusCode != 200 {
		t.Fatalf("login with the changed password: %d %v", res.StatusCode, body)
	}
	_, phone := f.passwordGrant(t, f.app.ID, f.appSecret, "ana@acme.test", afterReset, "")
	if phone["refresh_token"] == nil {
		t.Fatalf("app login: %v", phone)
	}
	f.clock.Advance(10 * time.Millisecond) // the revocation is later than both logins

	if res, body := f.bearer(t, "POST", "/api/auth/sessions/revoke", map[string]string{"user_id": f.user.ID}, str(phone["access_token"])); res.StatusCode != 403 || body["code"] != "forbidden" {
		t.Errorf("a user without the support permission: %d %v", res.StatusCode, body)
	}
	if res, body := f.bearer(t, "POST", "/api/auth/sessions/revoke", map[string]string{"user_id": "0190a0b0-0000-7000-8000-000000000000"}, supportAccess); res.StatusCode != 404 {
		t.Errorf("an unknown user: %d %v", res.StatusCode, body)
	}
	if res, body := f.bearer(t, "POST", "/api/auth/sessions/revoke", map[string]string{"user_id": f.user.ID}, supportAccess); res.StatusCode != 204 {
		t.Fatalf("support revokes: %d %v", res.StatusCode, body)
	}
	if res, body := f.refreshGrant(t, f.app.ID, f.appSecret, str(phone["refresh_token"]), ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
		t.Errorf("the app's refresh token after the revocation: %d %v", res.StatusCode, body)
	}
	if res, body := laptop.do(t, "POST", "/api/auth/refresh", nil); res.StatusCode != 401 {
		t.Errorf("the browser's refresh cookie after the revocation: %d %v", res.StatusCode, body)
	}
	// Access tokens are validated offline; the API refuses them once it has read the revocation
	// feed (every 2 s in production), here on demand.
	if err := f.revoked.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if res := f.me(t, str(phone["access_token"])); res.StatusCode != 401 {
		t.Errorf("a revoked session's access token: %d", res.StatusCode)
	}
	if res, _ := f.api(t, "GET", "/api/auth/me", nil, []*http.Cookie{staleAccess}); res.StatusCode != 401 {
		t.Errorf("the access cookie of a logged-out session: %d", res.StatusCode)
	}
	if res := f.me(t, supportAccess); res.StatusCode != 200 {
		t.Errorf("the support user's own session: %d", res.StatusCode)
	}

	// The documented error body {codigo, mensagem} becomes problem+json (SPEC §4/§5 decide
	// otherwise): the machine code is "code", the message "title", in Portuguese on request.
	res, en := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": "não é a senha"}, nil)
	_, pt := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": "não é a senha"}, nil, "Accept-Language", "pt-BR")
	if res.Header.Get("Content-Type") != "application/problem+json" || en["code"] != "invalid_credentials" || pt["code"] != en["code"] ||
		str(pt["title"]) == "" || pt["title"] == en["title"] {
		t.Errorf("error bodies: %v / %v", en, pt)
	}

	// Usuario: "marca a senha do usuário como expirada, forçando a redefinição no próximo login"
	// (a platform admin) and "apenas o próprio usuário pode alterar sua senha": the next login
	// gets a password_change_token instead of tokens, and the user sets a new password with it.
	t.Run("expired password, changed with the password_change_token", func(t *testing.T) {
		f.clock.Advance(10 * time.Millisecond)
		if _, err := f.ids.CreateUser(ctx, identity.NewUser{Email: "admin@portaria.test", Name: "Admin", Password: userPassword,
			Active: true, EmailVerified: true, Permissions: []string{identity.PermPlatformAdmin}}); err != nil {
			t.Fatal(err)
		}
		_, admin := f.passwordGrant(t, f.app.ID, f.appSecret, "admin@portaria.test", userPassword, "")
		if res, body := f.bearer(t, "POST", "/api/users/"+f.user.ID+"/password/expire", nil, str(admin["access_token"])); res.StatusCode != 204 {
			t.Fatalf("expire: %d %v", res.StatusCode, body)
		}
		res, expired := f.passwordGrant(t, f.app.ID, f.appSecret, "ana@acme.test", afterReset, "")
		if res.StatusCode != 403 || expired["error"] != "password_expired" || expired["access_token"] != nil || str(expired["password_change_token"]) == "" {
			t.Fatalf("login with an expired password: %d %v", res.StatusCode, expired)
		}
		const afterExpiry = "outra frase-senha bem longa"
		change := map[string]string{"password_change_token": str(expired["password_change_token"]), "new_password": afterExpiry, "new_password_confirm": afterExpiry}
		res, body := f.api(t, "POST", "/api/auth/password/change", change, nil)
		if res.StatusCode != 204 {
			t.Fatalf("change with the password_change_token: %d %v", res.StatusCode, body)
		}
		if res, body := f.passwordGrant(t, f.app.ID, f.appSecret, "ana@acme.test", afterExpiry, ""); res.StatusCode != 200 {
			t.Errorf("login with the new password: %d %v", res.StatusCode, body)
		}
	})

	// The Organizacao, Usuario, GrupoUsuario and TestePsicologico sections are the resource API:
	// TestSeedIntegramenteResourceAPI.
}

// TestSeedUsersAPI covers 001_bd260ec998e4d4d3.txt (Users API): self sign-up of an inactive user
// and its verification, viewing and editing oneself, login, recovery e-mail with a code, reset
// with the code, and refresh with a 1-day access token and a 30-day refresh token.
func TestSeedUsersAPI(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	// The documented lifetimes are a client's settings in Portaria.
	app, secret := f.client(t, identity.NewClient{Name: "users-api", Grants: []string{"password", "refresh_token"},
		AccessTTL: 24 * time.Hour, RefreshTTL: 30 * 24 * time.Hour})
	const email, password = "user@email.test", "Senha#123 mais longa"

	// Criar usuário: the user starts inactive. The document answers 200 with the user; Portaria
	// answers 202 without a body, the same as for an e-mail that already has an account, so
	// sign-up cannot tell which e-mails are registered (SPEC §4).
	res, body := f.api(t, "POST", "/api/auth/signup", map[string]string{"name": "user", "email": email, "password": password}, nil)
	if res.StatusCode != 202 {
		t.Fatalf("signup: %d %v", res.StatusCode, body)
	}
	u, err := f.ids.UserByEmail(ctx, email)
	if err != nil || u.Active || u.EmailVerified {
		t.Fatalf("the new user must start inactive and unverified: %+v %v", u, err)
	}
	// An inactive user cannot log in, and the answer is the one an unknown e-mail gets.
	res, inactive := f.passwordGrant(t, app.ID, secret, email, password, "")
	_, unknown := f.passwordGrant(t, app.ID, secret, "nobody@email.test", password, "")
	if res.StatusCode != 400 || inactive["error"] != "invalid_grant" || inactive["error_description"] != unknown["error_description"] {
		t.Errorf("login before verification: %d %v (unknown e-mail: %v)", res.StatusCode, inactive, unknown)
	}
	verify := f.mailsTo(t, email, "/verify-email#", 1)[0]
	if codeIn(t, verify) != extractParam(t, verify.Text, "token") {
		t.Errorf("the e-mail's code and link must carry the same token:\n%s", verify.Text)
	}
	if res, body := f.api(t, "POST", "/api/auth/verify-email", map[string]string{"token": codeIn(t, verify)}, nil); res.StatusCode != 204 {
		t.Fatalf("verify: %d %v", res.StatusCode, body)
	}

	// Login: the document posts JSON {username, password} and gets a refresh token; Portaria's
	// login is the RFC 6749 password grant (form, username = e-mail) with both tokens.
	res, tok := f.passwordGrant(t, app.ID, secret, email, password, "")
	if res.StatusCode != 200 || tok["refresh_token"] == nil || tok["token_type"] != "Bearer" || tok["expires_in"] != float64(86400) {
		t.Fatalf("login: %d %v", res.StatusCode, tok)
	}
	access := str(tok["access_token"])

	// Visualizar usuário: id, name, e-mail, active.
	res, me := f.bearer(t, "GET", "/api/auth/me", nil, access)
	if user := userOf(me); res.StatusCode != 200 || user["id"] != u.ID || user["name"] != "user" || user["email"] != email || user["active"] != true {
		t.Errorf("me: %d %v", res.StatusCode, me)
	}

	// Editar usuário, password part: new_password + new_password_confirm. Portaria also asks for
	// the current password (SPEC §4 password/change), which the document does not.
	const edited = "a senha editada pelo usuário"
	mismatch := map[string]string{"current_password": password, "new_password": edited, "new_password_confirm": edited + "!"}
	if res, body := f.bearer(t, "POST", "/api/auth/password/change", mismatch, access); res.StatusCode != 422 {
		t.Errorf("a confirmation that differs: %d %v", res.StatusCode, body)
	}
	change := map[string]string{"current_password": password, "new_password": edited, "new_password_confirm": edited}
	if res, body := f.bearer(t, "POST", "/api/auth/password/change", change, access); res.StatusCode != 204 {
		t.Fatalf("change: %d %v", res.StatusCode, body)
	}
	if res, _ := f.refreshGrant(t, app.ID, secret, str(tok["refresh_token"]), ""); res.StatusCode != 400 {
		t.Errorf("a password change ends the other sessions: %d", res.StatusCode)
	}
	f.clock.Advance(10 * time.Millisecond)

	// Editar usuário, name and e-mail: a user changes their own name with PATCH /api/users/me; their
	// e-mail, where password resets go, changes only through an administrator (docs/decisions.md).
	t.Run("Editar usuário: name and e-mail", func(t *testing.T) {
		_, tok := f.passwordGrant(t, app.ID, secret, email, edited, "")
		access := str(tok["access_token"])
		if res, body := f.bearer(t, "PATCH", "/api/users/me", map[string]any{"name": "user editado"}, access); res.StatusCode != 200 || body["name"] != "user editado" {
			t.Errorf("own name: %d %v", res.StatusCode, body)
		}
		if res, body := f.bearer(t, "PATCH", "/api/users/me", map[string]any{"email": "novo@email.test"}, access); res.StatusCode != 403 {
			t.Errorf("own e-mail: %d %v, want 403", res.StatusCode, body)
		}
		if res, me := f.bearer(t, "GET", "/api/users/me", nil, access); res.StatusCode != 200 || me["name"] != "user editado" || me["email"] != email {
			t.Errorf("read back: %d %v", res.StatusCode, me)
		}
	})

	// Recovery: an e-mail with a recovery code. Recovery Password: e-mail + code + new password
	// and its confirmation.
	if res, _ := f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": email}, nil); res.StatusCode != 202 {
		t.Fatalf("forgot: %d", res.StatusCode)
	}
	code := codeIn(t, f.mailsTo(t, email, "/reset-password#", 1)[0])
	const recovered = "senha recuperada com o código"
	bad := map[string]string{"email": email, "token": code, "new_password": recovered, "new_password_confirm": "outra coisa"}
	if res, body := f.api(t, "POST", "/api/auth/password/reset", bad, nil); res.StatusCode != 422 {
		t.Errorf("reset with a confirmation that differs: %d %v", res.StatusCode, body)
	}
	good := map[string]string{"email": email, "token": code, "new_password": recovered, "new_password_confirm": recovered}
	if res, body := f.api(t, "POST", "/api/auth/password/reset", good, nil); res.StatusCode != 204 {
		t.Fatalf("reset with the code: %d %v", res.StatusCode, body)
	}
	if res, body := f.api(t, "POST", "/api/auth/password/reset", good, nil); res.StatusCode != 400 || body["code"] != "invalid_token" {
		t.Errorf("the code works once: %d %v", res.StatusCode, body)
	}
	f.clock.Advance(10 * time.Millisecond)
	if res, _ := f.passwordGrant(t, app.ID, secret, email, edited, ""); res.StatusCode != 400 {
		t.Errorf("the old password after the reset: %d", res.StatusCode)
	}

	// Refresh Token: a new access token valid 1 day; the refresh token lives 30 days, counted from
	// the login (rotation does not extend it). The document sends the refresh token as a Bearer
	// header; Portaria takes it in the refresh_token grant, with the client's credentials (RFC 6749).
	res, tok = f.passwordGrant(t, app.ID, secret, email, recovered, "")
	if res.StatusCode != 200 {
		t.Fatalf("login with the recovered password: %d %v", res.StatusCode, tok)
	}
	if got := lifetime(t, str(tok["access_token"])); got != 86400 {
		t.Errorf("access token lives %v s, want 1 day", got)
	}
	rt := f.introspect(t, app.ID, secret, str(tok["refresh_token"]))
	if rt["active"] != true || rt["exp"].(float64)-rt["iat"].(float64) != 30*86400 {
		t.Errorf("refresh token: %v, want 30 days", rt)
	}
	f.clock.Advance(29 * 24 * time.Hour)
	res, next := f.refreshGrant(t, app.ID, secret, str(tok["refresh_token"]), "")
	if res.StatusCode != 200 || next["expires_in"] != float64(86400) || next["refresh_token"] == tok["refresh_token"] {
		t.Fatalf("refresh on day 29: %d %v", res.StatusCode, next)
	}
	if _, claims := jwtParts(t, str(next["access_token"])); claims["sub"] != u.ID {
		t.Errorf("refreshed access token: %v", claims)
	}
	f.clock.Advance(24*time.Hour + time.Second)
	if res, body := f.refreshGrant(t, app.ID, secret, str(next["refresh_token"]), ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh after 30 days: %d %v", res.StatusCode, body)
	}
}

// TestSeedArqGedAuth covers 002_92d5bfc165dcaf51.txt (ArqGed): a token per application, the
// expiry chosen per request in minutes, single-use tokens, and a refresh checked against the user
// (and, in Portaria, the client) it belongs to.
func TestSeedArqGedAuth(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	bia, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: f.org.ID, Email: "bia@acme.test", Name: "Bia", Password: userPassword, Active: true, EmailVerified: true})
	if err != nil {
		t.Fatal(err)
	}
	// "aplicacao": each application is a client of its own. The document's default of 5 days is
	// longer than any access token Portaria issues (24 h at most, docs/decisions.md): the
	// applications are registered with that maximum.
	apps := map[string]struct{ id, secret string }{}
	for _, name := range []string{"arqged-portal", "arqged-integracao"} {
		c, secret := f.client(t, identity.NewClient{Name: name, Grants: []string{"password", "refresh_token"}, AccessTTL: identity.MaxAccessTTL})
		apps[name] = struct{ id, secret string }{c.ID, secret}
	}
	portal, integ := apps["arqged-portal"], apps["arqged-integracao"]
	// The document's answer names the user (IdUsuario, NomeUsuario, Login): here the ID token.
	const ident = "&scope=openid+profile+email"

	// Gerar token, per application: each token names its application and has its own session.
	res, p := f.passwordGrant(t, portal.id, portal.secret, "ana@acme.test", userPassword, ident)
	_, i := f.passwordGrant(t, integ.id, integ.secret, "ana@acme.test", userPassword, ident)
	if res.StatusCode != 200 || p["access_token"] == nil || i["access_token"] == nil {
		t.Fatalf("login: %d %v / %v", res.StatusCode, p, i)
	}
	_, pc := jwtParts(t, str(p["access_token"]))
	_, ic := jwtParts(t, str(i["access_token"]))
	if pc["client_id"] != portal.id || ic["client_id"] != integ.id || pc["sid"] == ic["sid"] || pc["sub"] != f.user.ID || ic["sub"] != f.user.ID {
		t.Errorf("per-application tokens: %v / %v", pc, ic)
	}
	if _, id := jwtParts(t, str(p["id_token"])); id["sub"] != f.user.ID || id["name"] != "Ana" || id["email"] != "ana@acme.test" {
		t.Errorf("ID token: %v", id)
	}
	res, sessions := f.bearer(t, "GET", "/api/auth/sessions", nil, str(p["access_token"]))
	var clients []string
	for _, it := range sessions["items"].([]any) {
		clients = append(clients, str(it.(map[string]any)["client_id"]))
	}
	if res.StatusCode != 200 || !slices.Contains(clients, portal.id) || !slices.Contains(clients, integ.id) {
		t.Errorf("the user's sessions name both applications: %d %v", res.StatusCode, sessions)
	}

	// tempoExpiracao, in minutes, becomes expires_in in seconds; the answer tells the lifetime
	// actually granted. No value is the application's maximum; more than it is clamped.
	for _, tc := range []struct {
		minutes string
		want    float64
	}{{"", 86400}, {"30", 1800}, {"1", 60}, {"7200", 86400}} {
		extra := ""
		if tc.minutes != "" {
			extra = "&expires_in=" + minutesToSeconds(t, tc.minutes)
		}
		res, body := f.passwordGrant(t, portal.id, portal.secret, "ana@acme.test", userPassword, extra)
		if res.StatusCode != 200 || body["expires_in"] != tc.want || lifetime(t, str(body["access_token"])) != tc.want {
			t.Errorf("tempoExpiracao %q min: %d %v, want %v s", tc.minutes, res.StatusCode, body, tc.want)
		}
	}
	for _, bad := range []string{"0", "-5", "cinco"} {
		if res, body := f.passwordGrant(t, portal.id, portal.secret, "ana@acme.test", userPassword, "&expires_in="+bad); res.StatusCode != 400 || body["error"] != "invalid_request" {
			t.Errorf("expires_in=%s: %d %v", bad, res.StatusCode, body)
		}
	}

	// utilizacaoUnica: a single-use token is accepted once by the resource side; false (or no
	// value) is an ordinary token.
	res, once := f.passwordGrant(t, portal.id, portal.secret, "ana@acme.test", userPassword, "&single_use=true")
	if _, claims := jwtParts(t, str(once["access_token"])); res.StatusCode != 200 || claims["once"] != true {
		t.Fatalf("single-use login: %d %v", res.StatusCode, once)
	}
	if res := f.me(t, str(once["access_token"])); res.StatusCode != 200 {
		t.Errorf("first use of a single-use token: %d", res.StatusCode)
	}
	if res := f.me(t, str(once["access_token"])); res.StatusCode != 401 {
		t.Errorf("second use of a single-use token: %d", res.StatusCode)
	}
	_, reusable := f.passwordGrant(t, portal.id, portal.secret, "ana@acme.test", userPassword, "&single_use=false")
	for n := range 2 {
		if res := f.me(t, str(reusable["access_token"])); res.StatusCode != 200 {
			t.Errorf("use %d of an ordinary token: %d", n+1, res.StatusCode)
		}
	}
	if res, body := f.passwordGrant(t, portal.id, portal.secret, "ana@acme.test", userPassword, "&single_use=talvez"); res.StatusCode != 400 || body["error"] != "invalid_request" {
		t.Errorf("single_use=talvez: %d %v", res.StatusCode, body)
	}

	// Atualizar token: the refresh token is checked against the user it belongs to. The document
	// sends idUsuario and username with it; in Portaria the token itself is bound to its user and
	// client, so nothing the caller sends can pair it with another user: another application's
	// credentials are refused, and the new tokens always name the token's own user and session.
	_, b := f.passwordGrant(t, portal.id, portal.secret, "bia@acme.test", userPassword, "")
	if res, body := f.refreshGrant(t, integ.id, integ.secret, str(p["refresh_token"]), ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
		t.Errorf("another application's refresh: %d %v", res.StatusCode, body)
	}
	if body := f.introspect(t, integ.id, integ.secret, str(p["refresh_token"])); body["active"] != false || len(body) != 1 {
		t.Errorf("another application introspecting the refresh token: %v", body)
	}
	if body := f.introspect(t, portal.id, portal.secret, str(p["refresh_token"])); body["active"] != true || body["sub"] != f.user.ID ||
		body["client_id"] != portal.id || body["exp"] == nil {
		t.Errorf("the owner introspecting its refresh token (ExpiracaoRefreshToken = exp): %v", body)
	}
	for _, tc := range []struct {
		name    string
		refresh string
		userID  string
		sid     any
	}{{"ana", str(p["refresh_token"]), f.user.ID, pc["sid"]}, {"bia", str(b["refresh_token"]), bia.ID, nil}} {
		res, body := f.refreshGrant(t, portal.id, portal.secret, tc.refresh, "&expires_in=600")
		if res.StatusCode != 200 || body["expires_in"] != float64(600) {
			t.Errorf("%s's refresh: %d %v", tc.name, res.StatusCode, body)
			continue
		}
		_, claims := jwtParts(t, str(body["access_token"]))
		if claims["sub"] != tc.userID || claims["client_id"] != portal.id || (tc.sid != nil && claims["sid"] != tc.sid) {
			t.Errorf("%s's refreshed token: %v", tc.name, claims)
		}
	}
}

func minutesToSeconds(t *testing.T, minutes string) string {
	t.Helper()
	n, err := strconv.Atoi(minutes)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(n * 60)
}

// TestSeedTOTVSUsersAPI covers 003_4e1af97be5bdc815.txt (TOTVS users API): ChangePassword with the
// current password, RecoveryPassword (an e-mailed token for that user, valid one day and voided
// as soon as the user logs in) and ChangePasswordWithToken.
func TestSeedTOTVSUsersAPI(t *testing.T) {
	f := newLoginFixture(t)
	ctx := context.Background()
	if _, err := f.ids.CreateUser(ctx, identity.NewUser{OrgID: f.org.ID, Email: "bia@acme.test", Name: "Bia", Password: userPassword, Active: true, EmailVerified: true}); err != nil {
		t.Fatal(err)
	}
	const ana = "ana@acme.test"

	// 1.1 ChangePassword: lastPassword / newPassword / confirmationPassword become
	// current_password / new_password / new_password_confirm, for the caller itself (no user in
	// the URL: a user changes only their own password). The document answers 404 to any
	// inconsistency; Portaria answers 403 for a wrong current password and 422 for a bad new one.
	tok := f.login(t)
	change := func(current, next, confirm string) (*http.Response, map[string]any) {
		return f.bearer(t, "POST", "/api/auth/password/change",
			map[string]string{"current_password": current, "new_password": next, "new_password_confirm": confirm}, tok.AccessToken)
	}
	const changed = "Abc.456 mas bem mais longa"
	if res, body := change("Totvs@123", changed, changed); res.StatusCode != 403 || body["code"] != "invalid_credentials" {
		t.Errorf("a wrong current password: %d %v", res.StatusCode, body)
	}
	if res, body := change(userPassword, changed, "Abc.456"); res.StatusCode != 422 {
		t.Errorf("a confirmation that differs: %d %v", res.StatusCode, body)
	}
	if res, body := change(userPassword, changed, changed); res.StatusCode != 204 {
		t.Fatalf("change: %d %v", res.StatusCode, body)
	}
	f.clock.Advance(10 * time.Millisecond)
	if res, _ := f.passwordGrant(t, f.app.ID, f.appSecret, ana, userPassword, ""); res.StatusCode != 400 {
		t.Errorf("the old password after the change: %d", res.StatusCode)
	}
	password := changed

	// 1.2 RecoveryPassword: each request e-mails a token; mails counts them.
	mails := 0
	recover := func() string {
		t.Helper()
		if res, _ := f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": ana}, nil); res.StatusCode != 202 {
			t.Fatalf("forgot: %d", res.StatusCode)
		}
		mails++
		ms := f.mailsTo(t, ana, "/reset-password#", mails)
		return extractParam(t, ms[len(ms)-1].Text, "token")
	}
	// 1.3 ChangePasswordWithToken: the token stands where lastPassword stood.
	withToken := func(email, token, next string) (*http.Response, map[string]any) {
		return f.api(t, "POST", "/api/auth/password/reset",
			map[string]string{"email": email, "token": token, "new_password": next, "new_password_confirm": next}, nil)
	}

	// Valid for one day: still good just before 24 h…
	token := recover()
	f.clock.Advance(24*time.Hour - time.Minute)
	const afterDay = "trocada com o token do dia"
	if res, body := withToken(ana, token, afterDay); res.StatusCode != 204 {
		t.Fatalf("a token 23 h 59 min old: %d %v", res.StatusCode, body)
	}
	password = afterDay
	f.clock.Advance(10 * time.Millisecond)
	// …and refused after it.
	token = recover()
	f.clock.Advance(24*time.Hour + time.Second)
	if res, body := withToken(ana, token, "tarde demais para trocar"); res.StatusCode != 400 || body["code"] != "invalid_token" {
		t.Errorf("a token older than a day: %d %v", res.StatusCode, body)
	}

	// Valid only for the user it was issued to: another user's e-mail with it is refused, and
	// that user's password stays.
	token = recover()
	if res, body := withToken("bia@acme.test", token, "sequestro da conta da bia"); res.StatusCode != 400 || body["code"] != "invalid_token" {
		t.Errorf("another user's e-mail: %d %v", res.StatusCode, body)
	}
	if res, _ := f.passwordGrant(t, f.app.ID, f.appSecret, "bia@acme.test", userPassword, ""); res.StatusCode != 200 {
		t.Errorf("bia's password must not change: %d", res.StatusCode)
	}

	// Invalidated as soon as the user logs in: through the token endpoint or the cookie login.
	for _, how := range []string{"password grant", "cookie login"} {
		token = recover()
		switch how {
		case "password grant":
			if res, body := f.passwordGrant(t, f.app.ID, f.appSecret, ana, password, ""); res.StatusCode != 200 {
				t.Fatalf("login: %d %v", res.StatusCode, body)
			}
		default:
			if res, body := f.api(t, "POST", "/api/auth/login", map[string]string{"email": ana, "password": password}, nil); res.StatusCode != 200 {
				t.Fatalf("cookie login: %d %v", res.StatusCode, body)
			}
		}
		if res, body := withToken(ana, token, "depois de entrar no sistema"); res.StatusCode != 400 || body["code"] != "invalid_token" {
			t.Errorf("a token after a %s: %d %v", how, res.StatusCode, body)
		}
	}

	// A failed login does not void it (only an access that succeeds does), and the token then
	// sets the password, once, ending every session.
	_, session := f.passwordGrant(t, f.app.ID, f.appSecret, ana, password, "")
	token = recover()
	if res, _ := f.passwordGrant(t, f.app.ID, f.appSecret, ana, "Totvs@123", ""); res.StatusCode != 400 {
		t.Fatalf("a wrong password: %d", res.StatusCode)
	}
	const final = "Abc.456 definitiva e longa"
	if res, body := withToken(ana, token, final); res.StatusCode != 204 {
		t.Fatalf("change with the token: %d %v", res.StatusCode, body)
	}
	if res, body := withToken(ana, token, final+" bis"); res.StatusCode != 400 || body["code"] != "invalid_token" {
		t.Errorf("the token works once: %d %v", res.StatusCode, body)
	}
	if res, _ := f.refreshGrant(t, f.app.ID, f.appSecret, str(session["refresh_token"]), ""); res.StatusCode != 400 {
		t.Errorf("a change with the token ends the sessions: %d", res.StatusCode)
	}
	f.clock.Advance(10 * time.Millisecond)
	if res, body := f.passwordGrant(t, f.app.ID, f.appSecret, ana, final, ""); res.StatusCode != 200 {
		t.Errorf("login with the new password: %d %v", res.StatusCode, body)
	}
}

// TestSeedIntegraDoorAuth covers 004_cd56eab318bec07b.txt (IntegraDoor Auth): login with e-mail,
// password and 2FA, 2FA information before login, login by API key (client_credentials),
// refresh with a 15 h access token and a 72 h refresh token, and password change.
func TestSeedIntegraDoorAuth(t *testing.T) {
	f := newLoginFixture(t)
	door, doorSecret := f.client(t, identity.NewClient{Name: "integradoor", Grants: []string{"password", "refresh_token"},
		AccessTTL: 15 * time.Hour, RefreshTTL: 72 * time.Hour})
	secret, recovery := f.enrolTOTP(t)
	otp := func() string {
		f.clock.Advance(30 * time.Second) // a TOTP code is accepted once: one step per login
		code, err := totp.GenerateCode(secret, f.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return code
	}

	// Obter informações do 2FA, before login and without credentials: the method, and a masked
	// contact. The document masks a phone number; Portaria's second factor is an authenticator
	// app (TOTP), so the masked contact is the e-mail.
	res, info := f.api(t, "GET", "/api/auth/mfa-info?email="+url.QueryEscape("ana@acme.test"), nil, nil)
	methods, _ := info["mfa_methods"].([]any)
	if res.StatusCode != 200 || info["mfa_required"] != true || !slices.Contains(methods, any("totp")) || info["email"] != "a***@acme.test" {
		t.Errorf("mfa-info: %d %v", res.StatusCode, info)
	}

	// Login com e-mail e senha, com 2FA: the password step yields no token, only an mfa_token
	// that the second step completes with the code.
	mfaLogin := func(password string) map[string]any {
		t.Helper()
		res, step := f.passwordGrant(t, door.ID, doorSecret, "ana@acme.test", password, "")
		if res.StatusCode != 403 || step["error"] != "mfa_required" || step["access_token"] != nil || step["refresh_token"] != nil {
			t.Fatalf("password step: %d %v", res.StatusCode, step)
		}
		res = f.post(t, "/oauth/token", "grant_type=urn:portaria:grant-type:mfa&mfa_token="+url.QueryEscape(str(step["mfa_token"]))+"&otp="+otp(), door.ID, doorSecret)
		tok := decode(t, res)
		if res.StatusCode != 200 || tok["access_token"] == nil || tok["refresh_token"] == nil {
			t.Fatalf("second factor: %d %v", res.StatusCode, tok)
		}
		return tok
	}
	tok := mfaLogin(userPassword)
	_, claims := jwtParts(t, str(tok["access_token"]))
	if tok["expires_in"] != float64(15*3600) || lifetime(t, str(tok["access_token"])) != 15*3600 || claims["client_id"] != door.ID ||
		!slices.Contains(claims["amr"].([]any), any("otp")) {
		t.Errorf("access token: %v, claims %v", tok, claims)
	}
	// Uso do Bearer Token nas requisições.
	if res, me := f.bearer(t, "GET", "/api/auth/me", nil, str(tok["access_token"])); res.StatusCode != 200 || userOf(me)["id"] != f.user.ID {
		t.Errorf("me with the bearer token: %d %v", res.StatusCode, me)
	}
	// The browser flavour: e-mail, password and code in one cookie login.
	if res, body := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": userPassword, "otp": otp()}, nil); res.StatusCode != 200 || cookieNamed(res, "accessToken") == nil {
		t.Errorf("cookie login with the code: %d %v", res.StatusCode, body)
	}
	// A recovery code stands in for a lost authenticator.
	_, step := f.passwordGrant(t, door.ID, doorSecret, "ana@acme.test", userPassword, "")
	res = f.post(t, "/oauth/token", "grant_type=urn:portaria:grant-type:mfa&mfa_token="+url.QueryEscape(str(step["mfa_token"]))+"&recovery_code="+url.QueryEscape(recovery[0]), door.ID, doorSecret)
	if body := decode(t, res); res.StatusCode != 200 {
		t.Errorf("recovery code: %d %v", res.StatusCode, body)
	}

	// Renovar access_token com refresh_token: a new pair, the same session. The document sends
	// only the refresh token; Portaria also authenticates the client (RFC 6749 §6).
	res, next := f.refreshGrant(t, door.ID, doorSecret, str(tok["refresh_token"]), "")
	if res.StatusCode != 200 || next["refresh_token"] == tok["refresh_token"] || next["expires_in"] != float64(15*3600) {
		t.Fatalf("refresh: %d %v", res.StatusCode, next)
	}
	if _, nc := jwtParts(t, str(next["access_token"])); nc["sid"] != claims["sid"] {
		t.Errorf("refresh must keep the session: %v / %v", nc["sid"], claims["sid"])
	}
	if rt := f.introspect(t, door.ID, doorSecret, str(next["refresh_token"])); rt["exp"].(float64)-rt["iat"].(float64) != 72*3600 {
		t.Errorf("refresh token lifetime: %v, want 72 h", rt)
	}
	if res, body := f.refreshGrant(t, door.ID, doorSecret, str(next["refresh_token"]), ""); res.StatusCode != 200 {
		t.Fatalf("second refresh: %d %v", res.StatusCode, body)
	} else {
		next = body
	}

	// Alterar senha, authenticated by the bearer token: the current password and the new one
	// twice. Every session ends; 2FA stays on for the next login.
	const changed = "nova_senha_segura e longa"
	change := map[string]string{"current_password": "senha_antiga", "new_password": changed, "new_password_confirm": changed}
	if res, body := f.bearer(t, "POST", "/api/auth/password/change", change, str(next["access_token"])); res.StatusCode != 403 || body["code"] != "invalid_credentials" {
		t.Errorf("a wrong current password: %d %v", res.StatusCode, body)
	}
	change["current_password"] = userPassword
	if res, body := f.bearer(t, "POST", "/api/auth/password/change", change, str(next["access_token"])); res.StatusCode != 204 {
		t.Fatalf("change: %d %v", res.StatusCode, body)
	}
	if res, body := f.refreshGrant(t, door.ID, doorSecret, str(next["refresh_token"]), ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
		t.Errorf("the session after a password change: %d %v", res.StatusCode, body)
	}
	f.clock.Advance(10 * time.Millisecond)
	if res, body := f.passwordGrant(t, door.ID, doorSecret, "ana@acme.test", userPassword, ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
		t.Errorf("the old password: %d %v", res.StatusCode, body)
	}
	tok = mfaLogin(changed)

	// The 72 h are absolute: a refresh at 71 h works, one past 72 h does not, rotation or not.
	f.clock.Advance(71 * time.Hour)
	res, next = f.refreshGrant(t, door.ID, doorSecret, str(tok["refresh_token"]), "")
	if res.StatusCode != 200 {
		t.Fatalf("refresh at 71 h: %d %v", res.StatusCode, next)
	}
	f.clock.Advance(time.Hour + time.Second)
	if res, body := f.refreshGrant(t, door.ID, doorSecret, str(next["refresh_token"]), ""); res.StatusCode != 400 || body["error"] != "invalid_grant" {
		t.Errorf("refresh past 72 h: %d %v", res.StatusCode, body)
	}

	// Login com API Key: clientId and clientSecret in the body (client_secret_post), as the
	// document sends them; the token verifies offline against the JWKS and names the client.
	// client_credentials issues no refresh token (RFC 6749 §4.4.3): a key logs in again instead.
	key, keySecret := f.client(t, identity.NewClient{Name: "integradoor-key", Grants: []string{"client_credentials"}, AccessTTL: 15 * time.Hour})
	ctx := context.Background()
	cc := clientcredentials.Config{ClientID: key.ID, ClientSecret: keySecret, TokenURL: f.srv.URL + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}
	machine, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := oidc.NewRemoteKeySet(ctx, f.srv.URL+"/.well-known/jwks.json").VerifySignature(ctx, machine.AccessToken)
	if err != nil || !strings.Contains(string(payload), `"sub":"`+key.ID+`"`) || machine.RefreshToken != "" || machine.Type() != "Bearer" {
		t.Errorf("API key token: %v %s refresh %q", err, payload, machine.RefreshToken)
	}
	if got := lifetime(t, machine.AccessToken); got != 15*3600 {
		t.Errorf("API key token lives %v s, want 15 h", got)
	}
	if body := f.introspect(t, key.ID, keySecret, machine.AccessToken); body["active"] != true || body["client_id"] != key.ID {
		t.Errorf("introspection of the API key token: %v", body)
	}
	cc.ClientSecret = "not-the-secret"
	if _, err := cc.Token(ctx); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("a wrong clientSecret: %v", err)
	}
}
