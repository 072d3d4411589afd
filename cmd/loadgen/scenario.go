package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// credentials authenticate a confidential client; the JSON names are those `portaria clients
// create` prints.
type credentials struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
}

// requestFunc builds one request. It runs on the hot path, once per request.
type requestFunc func(ctx context.Context) (*http.Request, error)

// scenario is one kind of request the load consists of. Adding one is adding a row to
// scenarioTable. The baseline speaks client_credentials only: a scenario for another grant needs
// a baseline doing that grant's irreducible work.
type scenario struct {
	name string
	// setup registers what the scenario needs on a spawned Portaria, through its CLI, and returns
	// the credentials to drive it with. A -target server is set up by whoever runs it.
	setup func(ctx context.Context, cli portariaCLI) (credentials, error)
	// request returns the request builder for the server at base; it runs once per server.
	request func(base string, c credentials) requestFunc
}

func scenarioTable() []scenario {
	return []scenario{{
		name: "client_credentials",
		setup: func(ctx context.Context, cli portariaCLI) (credentials, error) {
			return cli.createClient(ctx, "--name", "loadgen", "--grant", "client_credentials", "--scope", "api:read")
		},
		request: tokenRequest(url.Values{"grant_type": {"client_credentials"}}),
	}}
}

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

// tokenRequest posts form to the token endpoint with HTTP Basic client authentication. Everything
// but the request itself is computed once.
func tokenRequest(form url.Values) func(string, credentials) requestFunc {
	body := form.Encode()
	return func(base string, c credentials) requestFunc {
		endpoint := base + "/oauth/token"
		// RFC 6749 §2.3.1: the id and secret are form-encoded before they go into Basic.
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.ID)+":"+url.QueryEscape(c.Secret)))
		return func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			req.Header.Set("Accept", "application/json")
			return req, nil
		}
	}
}
