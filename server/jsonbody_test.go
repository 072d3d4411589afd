package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portaria/portaria/internal/testenv"
)

// jsonTestBody exercises every kind of value decodeJSON meets: plain fields, a nested struct
// through a pointer, an embedded struct, maps, slices, free-form JSON and a self-decoding type.
type jsonTestBody struct {
	Name    string            `json:"name"`
	Age     int               `json:"age"`
	Active  bool              `json:"active"`
	Tags    []string          `json:"tags"`
	Fields  map[string]any    `json:"fields"`
	Scores  map[string]int    `json:"scores"`
	Answers json.RawMessage   `json:"answers"`
	Owner   *jsonTestOwner    `json:"owner"`
	Items   []jsonTestItem    `json:"items"`
	When    *time.Time        `json:"when"`
	Labels  map[string]string `json:"labels"`
	jsonTestEmbedded
}

type jsonTestOwner struct {
	Email string `json:"email"`
	Admin bool   `json:"admin"`
}

type jsonTestItem struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

type jsonTestEmbedded struct {
	Note string `json:"note"`
}

func jsonRequest(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/test", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// badJSONBodies are bodies decodeJSON refuses with a 400, and the code it answers; the
// messages test reuses them to check every detail has a Portuguese translation.
var badJSONBodies = []struct {
	name, body, code, detail string
}{
	{"an empty body is refused", ``, "invalid_json", "empty"},
	{"a body of only spaces is refused", " \n\t", "invalid_json", "empty"},
	{"null is refused", `null`, "invalid_json", "JSON object"},
	{"an array is refused", `[]`, "invalid_json", "not an array"},
	{"a number is refused", `42`, "invalid_json", "JSON object"},
	{"a string is refused", `"name"`, "invalid_json", "JSON object"},
	{"a byte order mark is refused", "\ufeff{}", "invalid_json", "byte order mark"},
	{"invalid UTF-8 in a value is refused", "{\"name\":\"a\xffb\"}", "invalid_json", "UTF-8"},
	{"invalid UTF-8 in a key is refused", "{\"na\xc3me\":\"x\"}", "invalid_json", "UTF-8"},
	{"an overlong UTF-8 encoding is refused", "{\"name\":\"\xc0\xaf\"}", "invalid_json", "UTF-8"},
	{"a lone high surrogate escape is refused", `{"name":"\ud800"}`, "invalid_json", "surrogate"},
	{"a lone low surrogate escape is refused", `{"name":"\udc00x"}`, "invalid_json", "surrogate"},
	{"a high surrogate followed by a non-surrogate escape is refused", `{"name":"\ud800\u0041"}`, "invalid_json", "surrogate"},
	{"a duplicate key is refused", `{"name":"a","name":"b"}`, "invalid_json", `duplicate key "name"`},
	{"a duplicate key spelt with an escape is refused", `{"name":"a","na\u006de":"b"}`, "invalid_json", `duplicate key "name"`},
	{"a duplicate key in a nested struct is refused", `{"owner":{"email":"a","email":"b"}}`, "invalid_json", `duplicate key "owner.email"`},
	{"a duplicate key in a map is refused", `{"scores":{"x":1,"x":2}}`, "invalid_json", `duplicate key "scores.x"`},
	{"a duplicate key in free-form JSON is refused", `{"fields":{"a":{"b":1,"b":2}}}`, "invalid_json", `duplicate key "fields.a.b"`},
	{"a duplicate key in a raw message is refused", `{"answers":{"q":1,"q":1}}`, "invalid_json", `duplicate key "answers.q"`},
	{"a duplicate key in an array element is refused", `{"items":[{"id":"a"},{"id":"b","id":"c"}]}`, "invalid_json", `duplicate key "items[1].id"`},
	{"a capitalised key is refused", `{"Name":"x"}`, "invalid_json", `key "Name" must be written "name"`},
	{"an upper-case key is refused", `{"NAME":"x"}`, "invalid_json", `"NAME"`},
	{"a case-variant key after the exact one is refused", `{"name":"a","Name":"b"}`, "invalid_json", `"Name"`},
	{"a case-variant key in a nested struct is refused", `{"owner":{"Admin":true}}`, "invalid_json", `key "owner.Admin"`},
	{"a case-variant key in an array of structs is refused", `{"items":[{"ID":"a"}]}`, "invalid_json", `key "items[0].ID"`},
	{"a case-variant key of an embedded field is refused", `{"Note":"x"}`, "invalid_json", `"Note"`},
	{"a long s folding to s is refused", "{\"tag\u017f\":[]}", "invalid_json", `must be written "tags"`},
	{"an unknown field is refused", `{"name":"x","role":"admin"}`, "unknown_field", `unknown field "role"`},
	{"an unknown field in a nested struct is refused", `{"owner":{"role":"admin"}}`, "unknown_field", `"owner.role"`},
	{"a second object after the first is refused", `{"name":"a"}{"name":"b"}`, "invalid_json", "after the JSON object"},
	{"garbage after the object is refused", `{"name":"a"} x`, "invalid_json", "after the JSON object"},
	{"a second value after the object is refused", `{} null`, "invalid_json", "after the JSON object"},
	{"a truncated object is refused", `{"name":"a"`, "invalid_json", "not valid JSON"},
	{"a trailing comma is refused", `{"name":"a",}`, "invalid_json", "not valid JSON"},
	{"a single-quoted string is refused", `{'name':'a'}`, "invalid_json", "not valid JSON"},
	{"a raw control character in a string is refused", "{\"name\":\"a\nb\"}", "invalid_json", "not valid JSON"},
	{"a number where a string is expected is refused", `{"name":42}`, "invalid_json", `the value of "name" must be a string`},
	{"a string where a number is expected is refused", `{"age":"42"}`, "invalid_json", `"age" must be a whole number`},
	{"a fraction where a whole number is expected is refused", `{"age":4.2}`, "invalid_json", `"age"`},
	{"a number too large for the field is refused", `{"age":1e400}`, "invalid_json", `"age"`},
	{"an object where a string is expected is refused", `{"name":{"a":1}}`, "invalid_json", `"name" must be a string`},
	{"a string where an object is expected is refused", `{"owner":"me"}`, "invalid_json", `"owner" must be an object`},
	{"a wrong type in a nested struct is refused", `{"owner":{"admin":"yes"}}`, "invalid_json", `"owner.admin" must be true or false`},
	{"a wrong type in a map is refused", `{"scores":{"x":"1"}}`, "invalid_json", `must be a whole number`},
	{"a malformed time is refused", `{"when":"yesterday"}`, "invalid_json", "wrong format"},
	{"nesting of 33 arrays is refused", `{"fields":{"a":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}}`, "invalid_json", "nested more than 32"},
	{"nesting of 10,000 objects is refused", `{"fields":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10001), "invalid_json", "nested"},
	{"nesting of 10,000 unclosed arrays is refused", `{"tags":` + strings.Repeat("[", 10000), "invalid_json", "nested"},
}

func TestDecodeJSONRefusesClientMistakesWith400(t *testing.T) {
	for _, tc := range badJSONBodies {
		t.Run(tc.name, func(t *testing.T) {
			var dst jsonTestBody
			err := decodeJSON(jsonRequest(tc.body), &dst)
			var p *problem
			if !errors.As(err, &p) {
				t.Fatalf("decodeJSON(%.60q) = %v, want a *problem", tc.body, err)
			}
			if p.Status != http.StatusBadRequest || p.Code != tc.code {
				t.Errorf("decodeJSON(%.60q) = %d %s (%s), want 400 %s", tc.body, p.Status, p.Code, p.Detail, tc.code)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
			}
		})
	}
}

func TestDecodeJSONAcceptsStrictJSON(t *testing.T) {
	tests := []struct {
		name, body string
		want       jsonTestBody
	}{
		{"an empty object leaves every field unset", `{}`, jsonTestBody{}},
		{"exact field names are accepted", `{"name":"Ana","age":30,"active":true}`, jsonTestBody{Name: "Ana", Age: 30, Active: true}},
		{"surrounding white space is accepted", " \n{\"name\":\"Ana\"}\r\n\t", jsonTestBody{Name: "Ana"}},
		{"the fields of an embedded struct are accepted", `{"note":"n"}`, jsonTestBody{jsonTestEmbedded: jsonTestEmbedded{Note: "n"}}},
		{"a nested struct is decoded", `{"owner":{"email":"a@x.test","admin":true}}`, jsonTestBody{Owner: &jsonTestOwner{Email: "a@x.test", Admin: true}}},
		{"map keys keep any case", `{"labels":{"Name":"a","name":"b","NAME":"c"}}`, jsonTestBody{Labels: map[string]string{"Name": "a", "name": "b", "NAME": "c"}}},
		{"free-form objects keep any case", `{"fields":{"A":1,"a":2}}`, jsonTestBody{Fields: map[string]any{"A": 1.0, "a": 2.0}}},
		{"equal keys in different objects are not duplicates", `{"items":[{"id":"a"},{"id":"b"}]}`, jsonTestBody{Items: []jsonTestItem{{ID: "a"}, {ID: "b"}}}},
		{"valid non-ASCII text is accepted", `{"name":"João \u00e9 \ud83d\ude00 😀"}`, jsonTestBody{Name: "João é 😀 😀"}},
		{"an escaped backslash before u is not an escape", `{"name":"\\ud800"}`, jsonTestBody{Name: `\ud800`}},
		{"null leaves a field unset", `{"name":null,"owner":null}`, jsonTestBody{}},
		{"a raw message is kept as sent", `{"answers":{"q1":[1,2]}}`, jsonTestBody{Answers: json.RawMessage(`{"q1":[1,2]}`)}},
		{"a large number stays a number in free-form JSON", `{"fields":{"n":1e300}}`, jsonTestBody{Fields: map[string]any{"n": 1e300}}},
		{"nesting of 32 levels is accepted", `{"fields":{"a":` + strings.Repeat("[", 30) + strings.Repeat("]", 30) + `}}`, func() jsonTestBody {
			var v any = []any{}
			for range 29 {
				v = []any{v}
			}
			return jsonTestBody{Fields: map[string]any{"a": v}}
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got jsonTestBody
			if err := decodeJSON(jsonRequest(tc.body), &got); err != nil {
				t.Fatalf("decodeJSON(%q): %v", tc.body, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decodeJSON(%q) = %+v, want %+v", tc.body, got, tc.want)
			}
		})
	}
}

func TestDecodeJSONChecksTheContentType(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		ok     bool
	}{
		{"application/json is accepted", http.Header{"Content-Type": {"application/json"}}, true},
		{"a utf-8 charset is accepted", http.Header{"Content-Type": {"application/json; charset=utf-8"}}, true},
		{"the charset and type are case-insensitive", http.Header{"Content-Type": {"Application/JSON;Charset=UTF-8"}}, true},
		{"an identity content coding is accepted", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"identity"}}, true},
		{"no Content-Type is refused", http.Header{}, false},
		{"text/plain is refused", http.Header{"Content-Type": {"text/plain"}}, false},
		{"a form is refused", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, false},
		{"multipart is refused", http.Header{"Content-Type": {"multipart/form-data; boundary=x"}}, false},
		{"a JSON suffix type is refused", http.Header{"Content-Type": {"application/merge-patch+json"}}, false},
		{"another charset is refused", http.Header{"Content-Type": {"application/json; charset=iso-8859-1"}}, false},
		{"another parameter is refused", http.Header{"Content-Type": {"application/json; profile=x"}}, false},
		{"a malformed Content-Type is refused", http.Header{"Content-Type": {"application/json; charset"}}, false},
		{"two Content-Type headers are refused", http.Header{"Content-Type": {"application/json", "text/plain"}}, false},
		{"a gzip body is refused", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/test", strings.NewReader(`{"name":"a"}`))
			r.Header = tc.header
			var dst jsonTestBody
			err := decodeJSON(r, &dst)
			if tc.ok {
				if err != nil {
					t.Fatalf("decodeJSON: %v", err)
				}
				return
			}
			var p *problem
			if !errors.As(err, &p) || p.Status != http.StatusUnsupportedMediaType || p.Code != "unsupported_media_type" {
				t.Fatalf("decodeJSON = %v, want 415 unsupported_media_type", err)
			}
		})
	}
}

func TestDecodeJSONAnswers413WhenTheBodyExceedsTheRouteLimit(t *testing.T) {
	r := jsonRequest(`{"name":"` + strings.Repeat("a", 100) + `"}`)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 50)
	var dst jsonTestBody
	var p *problem
	if err := decodeJSON(r, &dst); !errors.As(err, &p) || p.Status != http.StatusRequestEntityTooLarge || p.Code != "body_too_large" {
		t.Fatalf("decodeJSON = %v, want 413 body_too_large", err)
	}
}

func TestDecodeJSONTreatsABadDestinationAsAServerBug(t *testing.T) {
	var dst jsonTestBody
	err := decodeJSON(jsonRequest(`{}`), dst)
	var p *problem
	if err == nil || errors.As(err, &p) {
		t.Fatalf("decodeJSON into a non-pointer = %v, want a plain error", err)
	}
}

func TestDecodeJSONDecodesIntoAMap(t *testing.T) {
	var m map[string]int
	if err := decodeJSON(jsonRequest(`{"a":1,"A":2}`), &m); err != nil || m["a"] != 1 || m["A"] != 2 {
		t.Fatalf("decodeJSON into a map = %v, %v", m, err)
	}
	if err := decodeJSON(jsonRequest(`{"a":1,"a":2}`), &m); err == nil {
		t.Fatal("a duplicate map key was accepted")
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, tc := range badJSONBodies {
		if len(tc.body) < 1000 {
			f.Add(tc.body)
		}
	}
	for _, s := range []string{
		`{}`,
		`{"name":"Ana","age":30,"active":true,"tags":["a","b"],"note":"n"}`,
		`{"owner":{"email":"a@x.test","admin":false},"items":[{"id":"1","value":{"k":[1,"2",null,true]}}]}`,
		`{"fields":{"a":{"b":{"c":[{"d":1.5e3}]}}},"scores":{"x":-3},"labels":{"K":"v"}}`,
		`{"answers":[1,{"a":"b"}],"when":"2025-01-02T03:04:05Z"}`,
		`{"name":"\u0000\u001f\"\\\/\b\f\n\r\t \ud83d\ude00"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var got jsonTestBody
		var err error
		alloc := testenv.Allocated(func() {
			got = jsonTestBody{}
			err = decodeJSON(jsonRequest(body), &got)
		})
		if len(body) <= testenv.FuzzInputLimit && alloc > testenv.FuzzAllocLimit {
			t.Fatalf("decoding %d bytes allocated %d KiB, more than 1 MiB (IN-04)", len(body), alloc>>10)
		}
		if err != nil {
			var p *problem
			if !errors.As(err, &p) || p.Status >= 500 {
				t.Fatalf("decodeJSON(%q) = %v, want a 4xx problem", body, err)
			}
			return
		}
		// What the strict decoder accepts, the standard one reads the same way.
		var std jsonTestBody
		if err := json.Unmarshal([]byte(body), &std); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("decodeJSON(%q) = %+v, encoding/json reads %+v", body, got, std)
		}
		// And it round-trips: what we write back, we accept and read the same way.
		out, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("marshal %+v: %v", got, err)
		}
		var again jsonTestBody
		if err := decodeJSON(jsonRequest(string(out)), &again); err != nil {
			t.Fatalf("decodeJSON(%s), the encoding of an accepted body: %v", out, err)
		}
		if !reflect.DeepEqual(normalizeRaw(got), normalizeRaw(again)) {
			t.Fatalf("round trip of %q changed %+v into %+v", body, got, again)
		}
	})
}

// normalizeRaw compacts the raw message, which json.Marshal re-escapes, and reads null as unset.
func normalizeRaw(b jsonTestBody) jsonTestBody {
	if string(b.Answers) == "null" {
		b.Answers = nil
	}
	if b.Answers != nil {
		var v any
		if json.Unmarshal(b.Answers, &v) == nil {
			b.Answers, _ = json.Marshal(v)
		}
	}
	return b
}
