// Package portaria holds what belongs to the whole project rather than to one package: the
// OpenAPI description of every route, served at GET /openapi.yaml.
package portaria

import _ "embed"

// OpenAPI is openapi.yaml, the OpenAPI 3.1 description of every route (kept true by a test in
// package server).
//
//go:embed openapi.yaml
var OpenAPI []byte
