package assessment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MaxJSONBytes bounds a test's score schema, a result's scores and its answers: compiling and
// validating stay cheap, and the resource API's 64 KiB body limit could not carry more anyway.
const MaxJSONBytes = 64 << 10

// SchemaDialect is the only JSON Schema dialect a score schema may declare in "$schema"; one
// without "$schema" is read as this dialect too.
const SchemaDialect = "https://json-schema.org/draft/2020-12/schema"

// maxScoreErrors bounds how many broken rules a scores validation reports.
const maxScoreErrors = 5

// schemaLocation names the schema being compiled. It is not fetched: every document the compiler
// sees is either this one or an embedded meta-schema.
const schemaLocation = "urn:portaria:score-schema"

// noRemote is the compiler's loader: it refuses every URL, so that compiling a schema never reads
// a file or the network ("$ref": "file:///etc/passwd" or an internal URL must not work).
type noRemote struct{}

func (noRemote) Load(url string) (any, error) {
	return nil, errors.New("references outside the schema are not allowed")
}

// compileSchema compiles a score schema, or explains in one sentence why it cannot.
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	if obj, ok := doc.(map[string]any); ok {
		if d, ok := obj["$schema"]; ok && d != SchemaDialect && d != SchemaDialect+"#" {
			return nil, fmt.Errorf("must declare no other dialect than %s", SchemaDialect)
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noRemote{})
	if err := c.AddResource(schemaLocation, doc); err != nil {
		return nil, fmt.Errorf("is not a schema: %w", err)
	}
	sch, err := c.Compile(schemaLocation)
	if err != nil {
		return nil, fmt.Errorf("is not a valid JSON Schema: %s", compileProblem(err))
	}
	return sch, nil
}

// compileProblem says what is wrong with a schema: the first rule of the meta-schema it breaks,
// rather than the compiler's "not valid against metaschema", or the compiler's own words.
func compileProblem(err error) string {
	var se *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &se) && errors.As(se.Err, &ve) {
		return leaves(ve, nil)[0].Error()
	}
	return strings.ReplaceAll(err.Error(), schemaLocation, "")
}

// decodeJSON parses one JSON document keeping numbers exact, as the validator wants them.
func decodeJSON(raw json.RawMessage) (any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, errors.New("must be one valid JSON document")
	}
	return doc, nil
}

// validateScores adds a field error on "scores" for each rule of the schema the scores break,
// at most maxScoreErrors of them.
func validateScores(v *ValidationError, sch *jsonschema.Schema, scores json.RawMessage) {
	doc, err := decodeJSON(scores)
	if err != nil {
		v.add("scores", "%s", err)
		return
	}
	err = sch.Validate(doc)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return
	}
	for i, leaf := range leaves(ve, nil) {
		if i == maxScoreErrors {
			break
		}
		// A leaf's message is its instance location and the broken rule: "at '/anxiety': maximum: …".
		v.add("scores", "does not match the test's schema %s", leaf.Error())
	}
}

// leaves are the errors at the bottom of the validator's tree: the broken rules themselves, not
// the "allOf failed" above them.
func leaves(e *jsonschema.ValidationError, into []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return append(into, e)
	}
	for _, c := range e.Causes {
		into = leaves(c, into)
	}
	return into
}

// checkJSON adds a field error if raw is not one JSON document of at most MaxJSONBytes.
func checkJSON(v *ValidationError, field string, raw json.RawMessage) {
	switch {
	case len(raw) > MaxJSONBytes:
		v.add(field, "must be at most %d bytes", MaxJSONBytes)
	case !json.Valid(raw):
		v.add(field, "must be one valid JSON document")
	}
}

// compact removes insignificant white space, so that the stored document is as small as it can be
// and reads back byte for byte.
func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw // checkJSON has refused it already
	}
	return b.Bytes()
}
