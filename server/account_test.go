package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// api sends a JSON request to the account API with optional cookies and headers.
// rawJSON is a request body sent as it is, valid JSON or not.
type rawJSON string

func (f *loginFixture) api(t *testing.T, method, path string, body any, cookies []*http.Cookie, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	var r io.Reader
	if raw, ok := body.(rawJSON); ok {
		r = strings.NewReader(string(raw))
	} else if body != nil {
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
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res, m
}

func cookieNamed(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (f *loginFixture) cookieLogin(t *testing.T) (*http.Response, []*http.Cookie) {
	t.Helper()
	res, body := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": userPassword}, nil)
	if res.StatusCode != 200 {
		t.Fatalf("login: %d %v", res.StatusCode, body)
	}
	return res, []*http.Cookie{cookieNamed(res, "accessToken"), cookieNamed(res, "refreshToken")}
}

// CK-01, CK-02: cookie attributes, the me body, rotation on refresh, logout that ends the session.
func TestCookieSessions(t *testing.T) {
	f := newLoginFixture(t)
	planted := []*http.Cookie{{Name: "accessToken", Value: "planted"}, {Name: "refreshToken", Value: "planted"}}
	res, body := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": userPassword}, planted)
	if res.StatusCode != 200 || body["user"] == nil || body["session"] == nil {
		t.Fatalf("login: %d %v", res.StatusCode, body)
	}
	if _, leaked := body["access_token"]; leaked {
		t.Error("the login body must not carry tokens: they live in HttpOnly cookies")
	}
	access, refresh := cookieNamed(res, "accessToken"), cookieNamed(res, "refreshToken")
	if access == nil || refresh == nil || access.Value == "planted" || refresh.Value == "planted" {
		t.Fatalf("cookies %v", res.Cookies())
	}
	for _, c := range []*http.Cookie{access, refresh} {
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge <= 0 || len(c.Name)+len(c.Value) > 4096 {
			t.Errorf("cookie %s: %+v", c.Name, c)
		}
	}
	if access.Path != "/" || refresh.Path != "/api/auth" {
		t.Errorf("paths: access %q refresh %q", access.Path, refresh.Path)
	}
	cookies := []*http.Cookie{access, refresh}
	if res, _ := f.api(t, "GET", "/api/auth/me", nil, cookies[:1]); res.StatusCode != 200 {
		t.Errorf("me with the cookie: %d", res.StatusCode)
	}

	res, _ = f.api(t, "POST", "/api/auth/refresh", nil, cookies)
	if res.StatusCode != 204 {
		t.Fatalf("refresh: %d", res.StatusCode)
	}
	newRefresh := cookieNamed(res, "refreshToken")
	if newRefresh == nil || newRefresh.Value == refresh.Value || cookieNamed(res, "accessToken") == nil {
		t.Fatal("refresh must rotate the refresh cookie and set a new access cookie")
	}
	cookies = []*http.Cookie{cookieNamed(res, "accessToken"), newRefresh}

	res, _ = f.api(t, "POST", "/api/auth/logout", nil, cookies)
	if res.StatusCode != 200 || res.Header.Get("Clear-Site-Data") != `"cookies"` {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	for name, path := range map[string]string{"accessToken": "/", "refreshToken": "/api/auth"} {
		c := cookieNamed(res, name)
		if c == nil || c.MaxAge >= 0 || c.Path != path || !c.HttpOnly {
			t.Errorf("logout must expire %s with path %s: %+v", name, path, c)
		}
	}
	// Replaying the old cookies fails: the session ended server-side.
	f.clock.Advance(6 * time.Second)
	if res, _ := f.api(t, "POST", "/api/auth/refresh", nil, cookies); res.StatusCode != 401 {
		t.Errorf("refresh after logout: %d", res.StatusCode)
	}
}

// CK-03: cookie-authenticated unsafe requests from a foreign origin, or not JSON, are refused.
func TestCookieRequestsAreProtectedAgainstCSRF(t *testing.T) {
	f := newLoginFixture(t)
	_, cookies := f.cookieLogin(t)
	res, body := f.api(t, "POST", "/api/auth/logout", nil, cookies, "Origin", "https://evil.test")
	if res.StatusCode != 403 || body["code"] != "csrf" {
		t.Errorf("foreign origin: %d %v", res.StatusCode, body)
	}
	res, _ = f.api(t, "POST", "/api/auth/logout", nil, cookies, "Sec-Fetch-Site", "cross-site")
	if res.StatusCode != 403 {
		t.Errorf("cross-site fetch: %d", res.StatusCode)
	}
	if res, _ := f.api(t, "POST", "/api/auth/refresh", nil, cookies, "Origin", f.issuer); res.StatusCode != 204 {
		t.Errorf("same origin: %d", res.StatusCode)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/auth/login", strings.NewReader(`{"email":"ana@acme.test","password":"`+userPassword+`"}`))
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 415 {
		t.Errorf("text/plain login: %v %d", err, res.StatusCode)
	}
	if res, _ := f.api(t, "GET", "/api/auth/logout", nil, cookies); res.StatusCode != 405 {
		t.Errorf("GET logout: %d", res.StatusCode)
	}
}

func TestWrongCredentialsAnswerTheSameWhicheverWasWrong(t *testing.T) {
	f := newLoginFixture(t)
	_, wrongPassword := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": "not the password"}, nil)
	res, unknown := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "nobody@acme.test", "password": "not the password"}, nil)
	if res.StatusCode != 401 || unknown["code"] != "invalid_credentials" {
		t.Fatalf("unknown e-mail: %d %v", res.StatusCode, unknown)
	}
	a, _ := json.Marshal(wrongPassword)
	b, _ := json.Marshal(unknown)
	if string(a) != string(b) {
		t.Errorf("bodies differ:\n%s\n%s", a, b)
	}
	_, pt := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": "not the password"}, nil, "Accept-Language", "pt-BR,pt;q=0.9")
	if pt["title"] == wrongPassword["title"] {
		t.Errorf("Accept-Language pt must answer in Portuguese: %v", pt["title"])
	}
}

// enrolTOTP turns 2FA on for the fixture's user and returns the secret and recovery codes.
func (f *loginFixture) enrolTOTP(t *testing.T) (string, []string) {
	t.Helper()
	_, cookies := f.cookieLogin(t)
	res, setup := f.api(t, "POST", "/api/auth/mfa/totp/setup", nil, cookies)
	if res.StatusCode != 200 || setup["secret"] == nil || !strings.HasPrefix(setup["otpauth_uri"].(string), "otpauth://totp/") || setup["qr_png"] == nil {
		t.Fatalf("setup: %d %v", res.StatusCode, setup)
	}
	secret := setup["secret"].(string)
	code, _ := totp.GenerateCode(secret, f.clock.Now())
	res, confirm := f.api(t, "POST", "/api/auth/mfa/totp/confirm", map[string]string{"otp": code}, cookies)
	if res.StatusCode != 200 {
		t.Fatalf("confirm: %d %v", res.StatusCode, confirm)
	}
	var codes []string
	for _, c := range confirm["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes", len(codes))
	}
	f.clock.Advance(30 * time.Second) // the confirmation used this step's code
	return secret, codes
}

// TestABlankEmailIsAWrongLogin: a login without an e-mail is refused like a wrong one, at both
// doors; it once reached the throttle, which refuses an empty account, and answered 500.
func TestABlankEmailIsAWrongLogin(t *testing.T) {
	f := newLoginFixture(t)
	for _, body := range []any{map[string]string{}, map[string]string{"email": " ", "password": userPassword}} {
		if res, got := f.api(t, "POST", "/api/auth/login", body, nil); res.StatusCode != http.StatusUnauthorized || got["code"] != "invalid_credentials" {
			t.Errorf("cookie login with %v: %d %v", body, res.StatusCode, got)
		}
	}
	res := f.post(t, "/oauth/token", "grant_type=password&username=+&password=x", f.app.ID, f.appSecret)
	if got := decode(t, res); res.StatusCode != http.StatusBadRequest || got["error"] != "invalid_grant" {
		t.Errorf("password grant with a blank username: %d %v", res.StatusCode, got)
	}
}

// PW-06: with 2FA on, a correct password yields no token, only an mfa_token that the MFA grant
// completes, once, within 5 tries.
func TestTwoFactorLogin(t *testing.T) {
	// A lenient account throttle, so that the mfa_token's own limit of 5 tries is what is tested.
	f := newLoginFixture(t, withAccountFailures(50))
	secret, recovery := f.enrolTOTP(t)
	pw := "grant_type=password&scope=api&username=ana%40acme.test&password=" + url.QueryEscape(userPassword)
	mfaStep := func() string {
		res := f.post(t, "/oauth/token", pw, f.app.ID, f.appSecret)
		body := decode(t, res)
		if res.StatusCode != 403 || body["error"] != "mfa_required" || body["access_token"] != nil || body["refresh_token"] != nil {
			t.Fatalf("password step: %d %v", res.StatusCode, body)
		}
		return body["mfa_token"].(string)
	}
	grant := func(mfaToken, field, value string) (int, map[string]any) {
		res := f.post(t, "/oauth/token", "grant_type=urn:portaria:grant-type:mfa&mfa_token="+url.QueryEscape(mfaToken)+"&"+field+"="+url.QueryEscape(value), f.app.ID, f.appSecret)
		return res.StatusCode, decode(t, res)
	}
	code, _ := totp.GenerateCode(secret, f.clock.Now())
	tok := mfaStep()
	status, body := grant(tok, "otp", code)
	if status != 200 || body["access_token"] == nil {
		t.Fatalf("otp step: %d %v", status, body)
	}
	if _, claims := jwtParts(t, body["access_token"].(string)); !strings.Contains(claims["amr"].(any).([]any)[1].(string), "otp") {
		t.Errorf("amr %v", claims["amr"])
	}
	if status, _ := grant(tok, "otp", code); status != 400 {
		t.Errorf("the mfa_token is single-use: %d", status)
	}
	if status, _ := grant(mfaStep(), "otp", code); status != 400 {
		t.Errorf("a TOTP code is accepted once: %d", status)
	}

	// Five wrong codes kill the mfa_token, even for the right code after them.
	f.clock.Advance(30 * time.Second)
	tok = mfaStep()
	for range 5 {
		if status, _ := grant(tok, "otp", "000000"); status != 400 {
			t.Fatalf("wrong code: %d", status)
		}
	}
	code, _ = totp.GenerateCode(secret, f.clock.Now())
	if status, _ := grant(tok, "otp", code); status != 400 {
		t.Errorf("the 6th attempt must fail even with the right code: %d", status)
	}
	// The account is now throttled (5 failures); after the cool-down a recovery code works once.
	f.clock.Advance(time.Minute)
	tok = mfaStep()
	if status, body := grant(tok, "recovery_code", recovery[0]); status != 200 {
		t.Fatalf("recovery code: %d %v", status, body)
	}
	if status, _ := grant(mfaStep(), "recovery_code", recovery[0]); status != 400 {
		t.Errorf("a recovery code works once: %d", status)
	}
	// The cookie login applies the same policy: no cookies without the second factor.
	res, body := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": userPassword}, nil)
	if res.StatusCode != 403 || body["code"] != "mfa_required" || body["mfa_token"] == nil || cookieNamed(res, "accessToken") != nil {
		t.Errorf("cookie login with 2FA: %d %v", res.StatusCode, body)
	}
	f.clock.Advance(30 * time.Second)
	code, _ = totp.GenerateCode(secret, f.clock.Now())
	res, body = f.api(t, "POST", "/api/auth/login/mfa", map[string]string{"mfa_token": body["mfa_token"].(string), "otp": code}, nil)
	if res.StatusCode != 200 || cookieNamed(res, "accessToken") == nil {
		t.Errorf("login/mfa: %d %v", res.StatusCode, body)
	}
}

// F2: 50 concurrent completions of one mfa_token with the right code → exactly one success.
func TestConcurrentMFACompletionsSucceedOnce(t *testing.T) {
	f := newLoginFixture(t)
	secret, _ := f.enrolTOTP(t)
	res := f.post(t, "/oauth/token", "grant_type=password&scope=api&username=ana%40acme.test&password="+url.QueryEscape(userPassword), f.app.ID, f.appSecret)
	tok := decode(t, res)["mfa_token"].(string)
	code, _ := totp.GenerateCode(secret, f.clock.Now())
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			res := f.post(t, "/oauth/token", "grant_type=urn:portaria:grant-type:mfa&mfa_token="+url.QueryEscape(tok)+"&otp="+code, f.app.ID, f.appSecret)
			res.Body.Close()
			if res.StatusCode == 200 {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if res.StatusCode >= 500 {
				t.Errorf("status %d", res.StatusCode)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d successes, want 1", ok)
	}
}

// F11: 1,000 guesses on one account over an hour, each from one of 100 forged X-Forwarded-For
// addresses, evaluate at most 15 passwords, whether the server believes the header (behind a
// trusted proxy, each guess then comes from another address) or not; and an account that does
// not exist answers the very same sequence of statuses and bodies.
func TestBruteForceFromSpoofedAddresses(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []fixtureOption
	}{
		{"forwarded addresses ignored", nil},
		{"forwarded addresses believed", []fixtureOption{withTrustedProxies("127.0.0.0/8", "::1/128")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newLoginFixture(t, tc.opts...)
			guesses := func(email string) []rawAnswer {
				var answers []rawAnswer
				for i := range 1000 {
					form := "grant_type=password&username=" + url.QueryEscape(email) + "&password=guess-" + fmt.Sprint(i)
					answers = append(answers, f.rawDoWith(t, "POST", "/oauth/token", form, f.app.ID, f.appSecret,
						"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i%100)))
					if i%100 == 99 {
						f.clock.Advance(6 * time.Minute) // 1,000 guesses in an hour
					}
				}
				f.clock.Advance(time.Hour) // the next account starts from a clean slate
				return answers
			}
			known, unknown := guesses("ana@acme.test"), guesses("nobody@acme.test")
			evaluated := 0
			for i := range known {
				if known[i].status == http.StatusBadRequest {
					evaluated++
				}
				if known[i].status != unknown[i].status || !bytes.Equal(known[i].body, unknown[i].body) ||
					known[i].header.Get("Retry-After") != unknown[i].header.Get("Retry-After") {
					t.Fatalf("guess %d: the known account answered %d %s (Retry-After %q), the unknown one %d %s (%q)", i,
						known[i].status, known[i].body, known[i].header.Get("Retry-After"), unknown[i].status, unknown[i].body, unknown[i].header.Get("Retry-After"))
				}
			}
			if evaluated > 15 || evaluated == 0 {
				t.Errorf("%d passwords evaluated out of 1,000 guesses, want 1 to 15", evaluated)
			}
			t.Logf("1,000 guesses from 100 addresses: %d evaluated", evaluated)
			if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", userPassword); err != nil {
				t.Errorf("the right password after the cool-down: %v", err)
			}
		})
	}
}

// PW-03: 1,000 guesses against one account evaluate at most a handful of passwords; the right
// password works after the cool-down.
func TestBruteForceIsThrottledBeforeHashing(t *testing.T) {
	f := newLoginFixture(t)
	evaluated, throttled := 0, 0
	for i := range 1000 {
		res := f.post(t, "/oauth/token", "grant_type=password&username=ana%40acme.test&password=guess-number-"+url.QueryEscape(string(rune('a'+i%26)))+"-x", f.app.ID, f.appSecret)
		body := decode(t, res)
		switch res.StatusCode {
		case 400:
			evaluated++
		case 429:
			throttled++
			if res.Header.Get("Retry-After") == "" || body["error"] == nil {
				t.Fatalf("429 without Retry-After or RFC 6749 body: %v", body)
			}
		default:
			t.Fatalf("status %d", res.StatusCode)
		}
		if i%100 == 99 {
			f.clock.Advance(3 * time.Minute) // the hour of guesses of PW-03
		}
	}
	if evaluated > 15 {
		t.Errorf("%d passwords evaluated out of 1,000 guesses, want at most 15", evaluated)
	}
	t.Logf("1,000 guesses: %d evaluated, %d throttled", evaluated, throttled)
	f.clock.Advance(16 * time.Minute)
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", userPassword); err != nil {
		t.Errorf("the right password after the cool-down: %v", err)
	}
}

// PR-01…PR-04 and the TOTVS rules: forgot answers the same for everyone, the link comes from the
// configured issuer, the token works once, a successful login voids it, a reset ends sessions.
func TestPasswordReset(t *testing.T) {
	f := newLoginFixture(t)
	forgot := func(email string) (*http.Response, string) {
		res, _ := f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": email}, nil,
			"Host", "evil.test", "X-Forwarded-Host", "evil.test", "Forwarded", "host=evil.test")
		return res, res.Header.Get("Content-Length")
	}
	r1, l1 := forgot("nobody@acme.test")
	r2, l2 := forgot("ana@acme.test")
	if r1.StatusCode != 202 || r2.StatusCode != 202 || l1 != l2 {
		t.Fatalf("forgot: %d/%d lengths %s/%s", r1.StatusCode, r2.StatusCode, l1, l2)
	}
	msgs := f.mails(t, 1)
	link := msgs[len(msgs)-1].Text
	if !strings.Contains(link, f.issuer+"/reset-password") || strings.Contains(link, "evil.test") {
		t.Fatalf("reset e-mail must link to the configured issuer:\n%s", link)
	}
	token := extractParam(t, link, "token")

	// TOTVS: a successful login voids the outstanding reset token.
	f.login(t)
	reset := map[string]string{"email": "ana@acme.test", "token": token, "new_password": "a brand new passphrase", "new_password_confirm": "a brand new passphrase"}
	if res, body := f.api(t, "POST", "/api/auth/password/reset", reset, nil); res.StatusCode != 400 || body["code"] != "invalid_token" {
		t.Fatalf("reset with a token voided by a login: %d %v", res.StatusCode, body)
	}

	// A fresh token: a refused password keeps it; 50 concurrent resets → one success.
	old := f.login(t) // before asking for the token: a login voids outstanding ones
	forgot("ana@acme.test")
	msgs = f.mails(t, 2)
	token = extractParam(t, msgs[len(msgs)-1].Text, "token")
	reset["token"] = token
	weak := map[string]string{"email": "ana@acme.test", "token": token, "new_password": "password123", "new_password_confirm": "password123"}
	if res, _ := f.api(t, "POST", "/api/auth/password/reset", weak, nil); res.StatusCode != 422 {
		t.Errorf("a common password: %d", res.StatusCode)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 50 {
		wg.Go(func() {
			res, _ := f.api(t, "POST", "/api/auth/password/reset", reset, nil)
			mu.Lock()
			statuses[res.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[204] != 1 || statuses[400] != 49 {
		t.Errorf("50 concurrent resets: %v, want one 204", statuses)
	}
	if res, _ := f.refresh(t, old.RefreshToken, ""); res.StatusCode != 400 {
		t.Errorf("a reset must end every session: %d", res.StatusCode)
	}
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", "a brand new passphrase"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	msgs = f.mails(t, 3)
	if !strings.Contains(strings.ToLower(msgs[len(msgs)-1].Subject), "password") {
		t.Errorf("a password-changed notice must be sent: %q", msgs[len(msgs)-1].Subject)
	}
}

func extractParam(t *testing.T, text, name string) string {
	t.Helper()
	i := strings.Index(text, name+"=")
	if i < 0 {
		t.Fatalf("no %s in %q", name, text)
	}
	v := text[i+len(name)+1:]
	if j := strings.IndexAny(v, "&\n\r \""); j >= 0 {
		v = v[:j]
	}
	u, err := url.QueryUnescape(v)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPasswordChangeAndSessions(t *testing.T) {
	f := newLoginFixture(t)
	other := f.login(t)
	_, cookies := f.cookieLogin(t)
	res, body := f.api(t, "GET", "/api/auth/sessions", nil, cookies)
	items, _ := body["items"].([]any)
	if res.StatusCode != 200 || len(items) != 2 {
		t.Fatalf("sessions: %d %v", res.StatusCode, body)
	}
	current := 0
	for _, it := range items {
		if it.(map[string]any)["current"] == true {
			current++
		}
	}
	if current != 1 {
		t.Errorf("exactly one session is the current one: %v", items)
	}
	if res, _ := f.api(t, "DELETE", "/api/auth/sessions/AAAAAAAAAAAAAAAAAAAAAA", nil, cookies); res.StatusCode != 404 {
		t.Errorf("an unknown sid: %d", res.StatusCode)
	}

	wrong := map[string]string{"current_password": "not it", "new_password": "another passphrase", "new_password_confirm": "another passphrase"}
	if res, body := f.api(t, "POST", "/api/auth/password/change", wrong, cookies); res.StatusCode != 403 || body["code"] != "invalid_credentials" {
		t.Errorf("wrong current password: %d %v", res.StatusCode, body)
	}
	ok := map[string]string{"current_password": userPassword, "new_password": "another passphrase", "new_password_confirm": "another passphrase"}
	res, _ = f.api(t, "POST", "/api/auth/password/change", ok, cookies)
	if res.StatusCode != 204 || cookieNamed(res, "accessToken") == nil {
		t.Fatalf("change: %d", res.StatusCode)
	}
	if res, _ := f.refresh(t, other.RefreshToken, ""); res.StatusCode != 400 {
		t.Errorf("the other sessions must end: %d", res.StatusCode)
	}
	fresh := []*http.Cookie{cookieNamed(res, "accessToken"), cookieNamed(res, "refreshToken")}
	if res, _ := f.api(t, "GET", "/api/auth/me", nil, fresh[:1]); res.StatusCode != 200 {
		t.Errorf("the changing browser keeps a session: %d", res.StatusCode)
	}
}

func TestMFAInfoDoesNotRevealAccounts(t *testing.T) {
	f := newLoginFixture(t)
	res1, known := f.api(t, "GET", "/api/auth/mfa-info?email=ana%40acme.test", nil, nil)
	res2, unknown := f.api(t, "GET", "/api/auth/mfa-info?email=zed%40acme.test", nil, nil)
	if res1.StatusCode != 200 || res2.StatusCode != 200 || len(known) != len(unknown) {
		t.Fatalf("mfa-info: %d %v / %d %v", res1.StatusCode, known, res2.StatusCode, unknown)
	}
	if known["email"] != "a***@acme.test" || unknown["email"] != "z***@acme.test" {
		t.Errorf("masked contacts: %v %v", known["email"], unknown["email"])
	}
	_, again := f.api(t, "GET", "/api/auth/mfa-info?email=zed%40acme.test", nil, nil)
	if again["mfa_required"] != unknown["mfa_required"] {
		t.Error("an unknown e-mail must get a stable answer")
	}
}

func TestSignupAndVerification(t *testing.T) {
	f := newLoginFixture(t)
	res, _ := f.api(t, "POST", "/api/auth/signup", map[string]string{"name": "Caio", "email": "caio@example.test", "password": "caio's long passphrase"}, nil)
	if res.StatusCode != 202 {
		t.Fatalf("signup: %d", res.StatusCode)
	}
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "caio@example.test", "caio's long passphrase"); err == nil {
		t.Error("an unverified user must not log in")
	}
	msgs := f.mails(t, 1)
	token := extractParam(t, msgs[len(msgs)-1].Text, "token")
	if res, _ := f.api(t, "POST", "/api/auth/verify-email", map[string]string{"token": token}, nil); res.StatusCode != 204 {
		t.Fatalf("verify: %d", res.StatusCode)
	}
	if res, _ := f.api(t, "POST", "/api/auth/verify-email", map[string]string{"token": token}, nil); res.StatusCode != 400 {
		t.Errorf("a used verification token: %d", res.StatusCode)
	}
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "caio@example.test", "caio's long passphrase"); err != nil {
		t.Errorf("login after verification: %v", err)
	}
	if res, _ := f.api(t, "POST", "/api/auth/signup", map[string]string{"name": "Ana", "email": "ana@acme.test", "password": "some long passphrase"}, nil); res.StatusCode != 202 {
		t.Errorf("sign-up with a taken e-mail answers the same: %d", res.StatusCode)
	}
}

// PR-01: forgot is rate-limited per account without locking it or changing the answer, and per IP.
func TestForgotIsRateLimited(t *testing.T) {
	f := newLoginFixture(t)
	for i := range 8 {
		res, _ := f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": "ana@acme.test"}, nil)
		if res.StatusCode != 202 {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the queue deliver what it was given
	if got := len(f.mails(t, 5)); got != 5 {
		t.Errorf("%d reset e-mails for 8 requests in 15 minutes, want 5", got)
	}
	if _, err := f.oauth2Config.PasswordCredentialsToken(context.Background(), "ana@acme.test", userPassword); err != nil {
		t.Errorf("the account must not be locked: %v", err)
	}
	limited := 0
	for i := range 60 {
		res, _ := f.api(t, "POST", "/api/auth/password/forgot", map[string]string{"email": "user" + string(rune('a'+i%26)) + "@acme.test"}, nil)
		if res.StatusCode == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Error("one IP asking for 60 resets in 15 minutes must be limited")
	}
}

// RT-06: turning 2FA on or off ends the user's other sessions; the browser that did it keeps one.
func TestMFAChangesEndOtherSessions(t *testing.T) {
	f := newLoginFixture(t)
	device := f.login(t)
	secret, _ := f.enrolTOTP(t)
	if res, _ := f.refresh(t, device.RefreshToken, ""); res.StatusCode != 400 {
		t.Errorf("a session from before 2FA was turned on still refreshes: %d", res.StatusCode)
	}
	// Log in again in a browser (with the code) and turn 2FA off with password and code.
	code, _ := totp.GenerateCode(secret, f.clock.Now())
	res, body := f.api(t, "POST", "/api/auth/login", map[string]string{"email": "ana@acme.test", "password": userPassword, "otp": code}, nil)
	if res.StatusCode != 200 {
		t.Fatalf("login with otp: %d %v", res.StatusCode, body)
	}
	cookies := []*http.Cookie{cookieNamed(res, "accessToken"), cookieNamed(res, "refreshToken")}
	f.clock.Advance(30 * time.Second)
	code, _ = totp.GenerateCode(secret, f.clock.Now())
	res, body = f.api(t, "POST", "/api/auth/mfa/totp/disable", map[string]string{"password": userPassword, "otp": code}, cookies)
	if res.StatusCode != 204 || cookieNamed(res, "accessToken") == nil {
		t.Fatalf("disable: %d %v", res.StatusCode, body)
	}
	if res, _ := f.api(t, "POST", "/api/auth/refresh", nil, cookies); res.StatusCode != 401 {
		t.Errorf("the browser's old session must end too: %d", res.StatusCode)
	}
	fresh := []*http.Cookie{cookieNamed(res, "accessToken"), cookieNamed(res, "refreshToken")}
	if res, _ := f.api(t, "GET", "/api/auth/me", nil, fresh[:1]); res.StatusCode != 200 {
		t.Errorf("the browser keeps a fresh session: %d", res.StatusCode)
	}
}
