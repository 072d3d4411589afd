package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// credentials authenticate a confidential client; the JSON names are those `portaria clients
// create` prints.
type credentials struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// account is what a server is driven with: a client and, for scenarios that log in, a user.
type account struct {
	client   credentials
	username string
	password string
}

// requestFunc builds one request. It runs on the hot path, once per request.
type requestFunc func(ctx context.Context) (*http.Request, error)

// session is one worker's side of a scenario on one server. It lives for the whole run, so that
// a refresh chain goes on where the previous round left it.
type session struct {
	request requestFunc
	// follow, if set, receives the body of each 200 answer: a refresh chain takes its next token
	// from it. Without it the body is discarded unread.
	follow func(body []byte) error
	// expires, if set, is when the session's credential stops working; the driver logs in again,
	// between rounds, before a round would outlast it.
	expires time.Time
}

// load is how a scenario drives one server.
type load struct {
	// login starts a worker's session. It runs before the warm-up and between rounds, never
	// while a round is measured.
	login func(ctx context.Context, client *http.Client, t target) (session, error)
	// expect checks the body of the first answer, so that a run against a misconfigured server
	// fails at once rather than measuring error pages.
	expect func(body []byte) error
}

// scenario is one kind of request the load consists of, and the baseline it is judged against.
// Adding one is adding a row to scenarioTable.
type scenario struct {
	name string
	// minRatio is the throughput the target must reach, as a fraction of the baseline's.
	minRatio float64
	// concurrency is the default number of connections to each server.
	concurrency int
	// redis: the spawned server keeps its token state in Redis (-redis-url).
	redis bool
	// setup registers what the scenario needs on a spawned Portaria, through its CLI. A -target
	// server is set up by whoever runs it.
	setup func(ctx context.Context, cli portariaCLI) (account, error)
	// target drives Portaria, spawned or -target.
	target load
	// baseline drives the baseline server; it is unused if hashLimit is set.
	baseline load
	// hashLimit: the baseline is not a server but the argon2id hashes per second one CPU does
	// with Portaria's parameters, the ceiling of password logins.
	hashLimit bool
}

func scenarioTable() []scenario {
	clientCredentials := stateless(tokenRequest(url.Values{"grant_type": {"client_credentials"}}))
	return []scenario{{
		name:        "client_credentials",
		minRatio:    0.8,
		concurrency: 32,
		setup: func(ctx context.Context, cli portariaCLI) (account, error) {
			c, err := cli.createClient(ctx, "--name", "loadgen", "--grant", "client_credentials", "--scope", "api:read")
			return account{client: c}, err
		},
		target:   clientCredentials,
		baseline: clientCredentials,
	}, {
		// A refresh rotates the token (one read-and-swap in the store), reads the user and
		// organization again and signs an access token. The baseline is the signing alone.
		name:        "refresh",
		minRatio:    0.5,
		concurrency: 32,
		redis:       true,
		setup:       setupUserLogin,
		target:      load{login: refreshLogin, expect: expectToken},
		baseline:    clientCredentials,
	}, {
		// The baseline is what a resource server cannot skip: check one ES256 signature and the
		// claims. Portaria also checks revocation and reads the user and organization.
		name:        "me",
		minRatio:    0.7,
		concurrency: 32,
		setup:       setupUserLogin,
		target:      load{login: meLogin, expect: expectJSONObject},
		baseline:    load{login: verifyLogin, expect: expectJSONObject},
	}, {
		// A login takes one argon2id evaluation of about 25 ms on one CPU; a few connections
		// keep the hashing slot busy without making logins queue for it.
		name:        "password",
		minRatio:    0.9,
		concurrency: 4,
		setup:       setupUserLogin,
		target:      load{login: passwordSession, expect: expectToken},
		hashLimit:   true,
	}}
}

// scenarioAll runs every scenario of the table in turn.
const scenarioAll = "all"

func findScenario(name string) (scenario, bool) {
	for _, sc := range scenarioTable() {
		if sc.name == name {
			return sc, true
		}
	}
	return scenario{}, false
}

func scenarioNames() []string {
	var names []string
	for _, sc := range scenarioTable() {
		names = append(names, sc.name)
	}
	return names
}

// selectScenarios returns the scenarios name stands for: one, or all of them.
func selectScenarios(name string) ([]scenario, error) {
	if name == scenarioAll {
		return scenarioTable(), nil
	}
	if sc, ok := findScenario(name); ok {
		return []scenario{sc}, nil
	}
	return nil, fmt.Errorf("unknown -scenario %q; want one of %s or %s", name, strings.Join(scenarioNames(), ", "), scenarioAll)
}

// setupUserLogin creates a platform administrator with a random password and a confidential
// client allowed the password and refresh_token grants.
func setupUserLogin(ctx context.Context, cli portariaCLI) (account, error) {
	a := account{username: "loadgen@example.com", password: "lg-" + randomToken(24)}
	if err := cli.createAdmin(ctx, a.username, "Loadgen", a.password); err != nil {
		return account{}, err
	}
	var err error
	a.client, err = cli.createClient(ctx, "--name", "loadgen", "--grant", "password", "--grant", "refresh_token", "--scope", "api")
	return a, err
}

// stateless is a load whose every request is the same, built by req.
func stateless(req func(string, credentials) requestFunc) load {
	return load{
		login: func(_ context.Context, _ *http.Client, t target) (session, error) {
			return session{request: req(t.url, t.acct.client)}, nil
		},
		expect: expectToken,
	}
}

// tokenRequest posts form to the token endpoint with HTTP Basic client authentication. Everything
// but the request itself is computed once.
func tokenRequest(form url.Values) func(string, credentials) requestFunc {
	body := form.Encode()
	return func(base string, c credentials) requestFunc {
		endpoint := base + "/oauth/token"
		auth := basicAuth(c)
		return func(ctx context.Context) (*http.Request, error) {
			return newTokenRequest(ctx, endpoint, auth, body)
		}
	}
}

// basicAuth is the Authorization header of client c. RFC 6749 §2.3.1: the id and secret are
// form-encoded before they go into Basic.
func basicAuth(c credentials) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.ID)+":"+url.QueryEscape(c.Secret)))
}

func newTokenRequest(ctx context.Context, endpoint, auth, body string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// passwordForm is a password grant for t's user. The scope is api alone: with openid the server
// would also mint an ID token, which is not what these scenarios measure.
func passwordForm(t target) url.Values {
	return url.Values{
		"grant_type": {"password"},
		"username":   {t.acct.username},
		"password":   {t.acct.password},
		"scope":      {"api"},
	}
}

// passwordSession is the password scenario: every request is a whole login.
func passwordSession(_ context.Context, _ *http.Client, t target) (session, error) {
	if t.acct.username == "" {
		return session{}, errors.New("the password scenario needs a user (-username, -password-stdin)")
	}
	return session{request: tokenRequest(passwordForm(t))(t.url, t.acct.client)}, nil
}

// loginRetries bounds how often a login answered 503 (every password-hashing slot taken) is
// tried again.
const loginRetries = 20

// passwordLogin logs t's user in and returns the token answer.
func passwordLogin(ctx context.Context, client *http.Client, t target) (tokenResponse, error) {
	if t.acct.username == "" {
		return tokenResponse{}, errors.New("this scenario needs a user (-username, -password-stdin)")
	}
	body := passwordForm(t).Encode()
	auth := basicAuth(t.acct.client)
	for attempt := 0; ; attempt++ {
		req, err := newTokenRequest(ctx, t.url+"/oauth/token", auth, body)
		if err != nil {
			return tokenResponse{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return tokenResponse{}, fmt.Errorf("log in: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return tokenResponse{}, fmt.Errorf("log in: %w", err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable && attempt < loginRetries {
			select {
			case <-ctx.Done():
				return tokenResponse{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return tokenResponse{}, fmt.Errorf("log in: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		var tr tokenResponse
		if err := json.Unmarshal(b, &tr); err != nil || tr.AccessToken == "" {
			return tokenResponse{}, fmt.Errorf("log in: not a token response: %s", strings.TrimSpace(string(b)))
		}
		return tr, nil
	}
}

// refreshLogin logs in once and returns a session that refreshes in a chain: each request
// presents the refresh token the previous answer rotated in. Presenting a used one again would,
// after the server's grace window, revoke the whole family.
func refreshLogin(ctx context.Context, client *http.Client, t target) (session, error) {
	tr, err := passwordLogin(ctx, client, t)
	if err != nil {
		return session{}, err
	}
	if tr.RefreshToken == "" {
		return session{}, errors.New("log in: no refresh token; the client needs the refresh_token grant")
	}
	endpoint := t.url + "/oauth/token"
	auth := basicAuth(t.acct.client)
	current := tr.RefreshToken
	return session{
		request: func(ctx context.Context) (*http.Request, error) {
			return newTokenRequest(ctx, endpoint, auth, "grant_type=refresh_token&refresh_token="+url.QueryEscape(current))
		},
		follow: func(body []byte) error {
			var next struct {
				RefreshToken string `json:"refresh_token"`
			}
			if err := json.Unmarshal(body, &next); err != nil || next.RefreshToken == "" {
				return fmt.Errorf("no refresh token in the answer: %.200s", body)
			}
			current = next.RefreshToken
			return nil
		},
	}, nil
}

// meLogin logs in once and returns a session that asks GET /api/auth/me with the access token.
func meLogin(ctx context.Context, client *http.Client, t target) (session, error) {
	tr, err := passwordLogin(ctx, client, t)
	if err != nil {
		return session{}, err
	}
	s := bearerSession(t.url+"/api/auth/me", tr.AccessToken)
	// A minute's margin for clocks and for the login itself.
	s.expires = time.Now().Add(time.Duration(tr.ExpiresIn)*time.Second - time.Minute)
	return s, nil
}

// verifyLogin is the baseline of the me scenario: GET /verify with the token the baseline
// minted at start.
func verifyLogin(_ context.Context, _ *http.Client, t target) (session, error) {
	if t.bearer == "" {
		return session{}, errors.New("the baseline printed no token to verify")
	}
	return bearerSession(t.url+"/verify", t.bearer), nil
}

func bearerSession(endpoint, token string) session {
	auth := "Bearer " + token
	return session{request: func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Accept", "application/json")
		return req, nil
	}}
}

func expectToken(body []byte) error {
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return errors.New("not a token response")
	}
	return nil
}

func expectJSONObject(body []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || len(m) == 0 {
		return errors.New("not a JSON object")
	}
	return nil
}
