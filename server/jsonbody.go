package server

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxJSONDepth is the deepest nesting of objects and arrays a request body may have. Portaria's
// bodies are two or three levels deep; the cap keeps hostile input from costing stack or time.
const maxJSONDepth = 32

// decodeJSON decodes the body of an API request into dst, a pointer to a struct or map, refusing
// anything but one JSON object that means the same to every parser (IN-02, IN-03):
//
//   - Content-Type application/json, optionally with charset=utf-8; anything else is 415, which
//     also keeps cross-site HTML forms (text/plain, urlencoded, multipart) out (CK-03);
//   - valid UTF-8 with no lone surrogate escapes: encoding/json would silently turn both into
//     U+FFFD, so two parsers could read different names;
//   - no duplicate keys and no key that differs from a struct field's name only by case:
//     encoding/json keeps the last duplicate and matches names case-insensitively, the parser
//     differential behind CVE-2020-16250 (Vault);
//   - no unknown fields, no trailing data, at most maxJSONDepth levels of nesting.
//
// The route must cap the body with limitBody; the cap's *http.MaxBytesError answers 413.
// Every refusal is a *problem with status 4xx: client input never causes a 500.
func decodeJSON(r *http.Request, dst any) error {
	if p := checkJSONContentType(r.Header); p != nil {
		return p
	}
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decodeJSON: dst must be a non-nil pointer, not %T", dst) // a bug: 500
	}
	if r.Body == nil {
		return jsonProblem("the body is empty")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			p := newProblem(http.StatusRequestEntityTooLarge, "body_too_large", "The request body is too large.")
			p.Detail = fmt.Sprintf("the body must be at most %d bytes", tooLarge.Limit)
			return p
		}
		// The client went away or sent a broken chunked body: still its mistake.
		return jsonProblem("the body could not be read")
	}
	if err := checkJSONSyntax(body, rv.Type().Elem()); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	return nil
}

func jsonProblem(detail string) *problem {
	p := newProblem(http.StatusBadRequest, "invalid_json", "The request body is not valid JSON for this endpoint.")
	p.Detail = detail
	return p
}

func unknownFieldProblem(path string) *problem {
	p := newProblem(http.StatusBadRequest, "unknown_field", "The request body has a field this endpoint does not accept.")
	p.Detail = fmt.Sprintf("unknown field %s", quoteKey(path))
	return p
}

// checkJSONContentType accepts application/json with at most a charset=utf-8 parameter, and no
// content coding (RFC 7694 §3: 415 names the codings it accepts).
func checkJSONContentType(h http.Header) *problem {
	unsupported := func(detail string) *problem {
		p := newProblem(http.StatusUnsupportedMediaType, "unsupported_media_type", "The request body must be JSON (Content-Type: application/json).")
		p.Detail = detail
		return p
	}
	if ce := h.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(ce[0], "identity")) {
		p := unsupported("content codings are not accepted")
		p.header = http.Header{"Accept-Encoding": {"identity"}}
		return p
	}
	ct := h.Values("Content-Type")
	if len(ct) != 1 {
		return unsupported("the Content-Type header must be application/json")
	}
	mt, params, err := mime.ParseMediaType(ct[0])
	if err != nil || mt != "application/json" {
		return unsupported("the Content-Type header must be application/json")
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return unsupported("the only Content-Type parameter accepted is charset=utf-8")
		}
	}
	return nil
}

// checkJSONSyntax walks body once, token by token and without recursion, and refuses what
// encoding/json would accept but read ambiguously. root is the type being decoded into: it says
// which objects are structs, whose keys must match a field name exactly.
func checkJSONSyntax(body []byte, root reflect.Type) *problem {
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return jsonProblem("the body must not start with a byte order mark")
	}
	if !utf8.Valid(body) {
		return jsonProblem("the body is not valid UTF-8")
	}
	if hasLoneSurrogate(body) {
		return jsonProblem("the body has a \\u escape of a lone UTF-16 surrogate")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers stay text: the walk must not fail on 1e400, the decode decides
	fields := map[reflect.Type]map[string]reflect.Type{}
	var stack []jsonFrame
	for {
		tok, err := dec.Token()
		if err == io.EOF && stack == nil {
			return jsonProblem("the body is empty")
		}
		if err != nil {
			return syntaxProblem(err)
		}
		// Inside an object and before a value, the token is a key or the closing brace.
		if top := len(stack) - 1; top >= 0 && stack[top].object && !stack[top].afterKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:top]
			} else {
				k, ok := tok.(string)
				if !ok {
					return jsonProblem("the body is not valid JSON")
				}
				if p := stack[top].key(k, fields); p != nil {
					return p
				}
				continue
			}
		} else {
			elem := root
			if top >= 0 {
				elem = stack[top].valueType()
			}
			if d, ok := tok.(json.Delim); ok {
				switch d {
				case '{', '[':
					if top < 0 && d == '[' {
						return jsonProblem("the body must be a JSON object, not an array")
					}
					if len(stack) == maxJSONDepth {
						return jsonProblem(fmt.Sprintf("the body is nested more than %d levels deep", maxJSONDepth))
					}
					stack = append(stack, newJSONFrame(d == '{', elem, stack))
					continue
				case ']':
					stack = stack[:top]
				}
			} else if top < 0 {
				return jsonProblem("the body must be a JSON object")
			}
		}
		if len(stack) == 0 {
			break
		}
		stack[len(stack)-1].afterKey = false
		stack[len(stack)-1].index++
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonProblem("the body has data after the JSON object")
	}
	return nil
}

// jsonFrame is one open object or array of the walk.
type jsonFrame struct {
	object   bool
	typ      reflect.Type // the Go type decoded into; nil when opaque (any, custom unmarshalers)
	path     string       // where this value is, as "a.b[2]"
	seen     map[string]struct{}
	afterKey bool         // an object has read a key and waits for its value
	lastKey  string       // the key just read
	lastType reflect.Type // the Go type of the key's value
	index    int          // values read so far
}

func newJSONFrame(object bool, t reflect.Type, stack []jsonFrame) jsonFrame {
	f := jsonFrame{object: object, typ: decodedType(t)}
	if n := len(stack); n > 0 {
		parent := stack[n-1]
		if parent.object {
			f.path = joinPath(parent.path, parent.lastKey)
		} else {
			f.path = parent.path + "[" + strconv.Itoa(parent.index) + "]"
		}
	}
	return f
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// key checks one object key: exact duplicates everywhere; for a struct, the exact name of a field.
func (f *jsonFrame) key(k string, cache map[reflect.Type]map[string]reflect.Type) *problem {
	path := joinPath(f.path, k)
	if _, dup := f.seen[k]; dup {
		return jsonProblem(fmt.Sprintf("duplicate key %s", quoteKey(path)))
	}
	if f.seen == nil {
		f.seen = map[string]struct{}{}
	}
	f.seen[k] = struct{}{}
	f.afterKey, f.lastKey, f.lastType = true, k, nil
	switch {
	case f.typ == nil:
	case f.typ.Kind() == reflect.Map:
		f.lastType = f.typ.Elem()
	case f.typ.Kind() == reflect.Struct:
		names := cache[f.typ]
		if names == nil {
			names = jsonFieldNames(f.typ)
			cache[f.typ] = names
		}
		t, ok := names[k]
		if !ok {
			for name := range names {
				// encoding/json matches names with bytes.EqualFold (encoding/json/fold.go).
				if strings.EqualFold(name, k) {
					return jsonProblem(fmt.Sprintf("key %s must be written %s", quoteKey(path), quoteKey(joinPath(f.path, name))))
				}
			}
			return unknownFieldProblem(path)
		}
		f.lastType = t
	}
	return nil
}

// valueType is the Go type of the next value of an array, or of the value of the key just read.
func (f *jsonFrame) valueType() reflect.Type {
	if f.object {
		return f.lastType
	}
	if f.typ != nil && (f.typ.Kind() == reflect.Slice || f.typ.Kind() == reflect.Array) {
		return f.typ.Elem()
	}
	return nil
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodedType is the type whose fields a JSON value fills: pointers followed, and nil for types
// that decode themselves or take anything (their keys are only checked for duplicates).
func decodedType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(jsonUnmarshalerType) {
			return nil
		}
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		return nil
	}
	return t
}

// jsonFieldNames lists the JSON names of a struct's fields as encoding/json sees them: tag names,
// exported fields, fields of untagged embedded structs promoted (the shallower one wins).
func jsonFieldNames(t reflect.Type) map[string]reflect.Type {
	names := map[string]reflect.Type{}
	level := []reflect.Type{t}
	visited := map[reflect.Type]bool{}
	for len(level) > 0 {
		var next []reflect.Type
		found := map[string]reflect.Type{}
		for _, st := range level {
			if visited[st] {
				continue
			}
			visited[st] = true
			for i := range st.NumField() {
				sf := st.Field(i)
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if ft.Kind() != reflect.Struct && !sf.IsExported() {
						continue
					}
					if name == "" && ft.Kind() == reflect.Struct {
						next = append(next, ft)
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				if name == "" {
					name = sf.Name
				}
				if _, ok := names[name]; !ok {
					found[name] = sf.Type
				}
			}
		}
		for name, ft := range found {
			names[name] = ft
		}
		level = next
	}
	return names
}

// hasLoneSurrogate reports a \uD800–\uDFFF escape that is not a high surrogate followed by a low
// one. Backslashes only occur inside strings, so escapes can be read pairwise from the start.
func hasLoneSurrogate(b []byte) bool {
	surrogate := func(i int) (rune, bool) {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r, ok := surrogate(i)
		if !ok {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		switch {
		case 0xDC00 <= r && r <= 0xDFFF:
			return true
		case 0xD800 <= r && r <= 0xDBFF:
			lo, ok := surrogate(i + 6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		default:
			i += 5
		}
	}
	return false
}

func syntaxProblem(err error) *problem {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return jsonProblem(fmt.Sprintf("the body is not valid JSON at byte %d", se.Offset))
	}
	return jsonProblem("the body is not valid JSON")
}

// decodeProblem turns an error of the final decode into a 400 naming the field when it can.
func decodeProblem(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return jsonProblem(fmt.Sprintf("the body must be %s", jsonTypeName(te.Type)))
		}
		return jsonProblem(fmt.Sprintf("the value of %s must be %s", quoteKey(te.Field), jsonTypeName(te.Type)))
	}
	var ie *json.InvalidUnmarshalError
	if errors.As(err, &ie) {
		return err // a bug of the caller: 500
	}
	// The walk refuses unknown fields first; this catches the rare struct it models differently.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return unknownFieldProblem(name)
	}
	// A type's own UnmarshalJSON failed (a malformed time, for instance).
	return jsonProblem("the body has a value of the wrong format")
}

// jsonTypeName says which JSON value a Go type takes, for messages.
func jsonTypeName(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another type of value"
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number in range"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative whole number in range"
	case reflect.Float32, reflect.Float64:
		return "a number in range"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type of value"
}

// quoteKey quotes a client-supplied key for a message, cut to a readable length.
func quoteKey(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strconv.Quote(s)
}
