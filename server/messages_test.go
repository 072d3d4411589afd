package server

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/portaria/portaria/identity"
)

func TestMessagesGiveEveryCodeATitleInBothLanguages(t *testing.T) {
	for code, titles := range problemTitles {
		if titles.en == "" || titles.pt == "" || titles.en == titles.pt {
			t.Errorf("code %s: titles %q / %q, want both languages", code, titles.en, titles.pt)
		}
	}
	for en, pt := range ptMessages {
		if pt == "" || strings.Count(en, "%s") != strings.Count(pt, "%s") {
			t.Errorf("ptMessages[%q] = %q: empty or with other placeholders", en, pt)
		}
	}
}

// parseSources parses the non-test Go files of dir.
func parseSources(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", p, err)
		}
		files = append(files, f)
	}
	return files
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// A new problem code, title or field message in the package must come with its Portuguese.
func TestMessagesTranslateEveryProblemOfThePackage(t *testing.T) {
	codes := 0
	for _, f := range parseSources(t, ".") {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); !ok || id.Name != "newProblem" || len(n.Args) != 3 {
					return true
				}
				code, ok := stringLit(n.Args[1])
				if !ok {
					t.Errorf("newProblem with a code that is not a string literal: keep codes greppable")
					return true
				}
				codes++
				titles, known := problemTitles[code]
				if !known {
					t.Errorf("problem code %q has no entry in problemTitles", code)
				}
				if title, ok := stringLit(n.Args[2]); ok && title != titles.en {
					if _, ok := ptMessages[title]; !ok {
						t.Errorf("title %q (code %s) is neither the code's title nor translated in ptMessages", title, code)
					}
				}
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); !ok || id.Name != "fieldError" {
					return true
				}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Message" {
						continue
					}
					if msg, ok := stringLit(kv.Value); ok {
						if _, ok := translate(msg); !ok {
							t.Errorf("field message %q has no translation in ptMessages", msg)
						}
					}
				}
			}
			return true
		})
	}
	if codes < 8 {
		t.Fatalf("found only %d newProblem calls: the source walk is broken", codes)
	}
}

// identity.ValidationError messages reach the API as field errors.
func TestMessagesTranslateEveryIdentityFieldMessage(t *testing.T) {
	formats := addFormats(t, filepath.Join("..", "identity"))
	if len(formats) < 10 {
		t.Fatalf("found only %d identity messages: the source walk is broken", len(formats))
	}
	requireTranslations(t, "identity", formats)
}

// assessment.ValidationError messages reach the API as field errors too: those of add calls, of
// FieldError literals (the SQL store's), and of the errors a schema check writes as a message
// with add(field, "%s", err), which read as field messages ("must …", "is …").
func TestMessagesTranslateEveryAssessmentFieldMessage(t *testing.T) {
	dir := filepath.Join("..", "assessment")
	formats := addFormats(t, dir)
	if len(formats) < 10 {
		t.Fatalf("found only %d assessment messages: the source walk is broken", len(formats))
	}
	for _, d := range []string{dir, filepath.Join(dir, "sqlstore")} {
		for _, f := range parseSources(t, d) {
			ast.Inspect(f, func(n ast.Node) bool {
				if msg, ok := fieldErrorMessage(n); ok {
					formats = append(formats, msg)
				}
				if msg, ok := errorText(n); ok && (strings.HasPrefix(msg, "must ") || strings.HasPrefix(msg, "is ")) {
					formats = append(formats, strings.ReplaceAll(msg, "%w", "%s"))
				}
				return true
			})
		}
	}
	requireTranslations(t, "assessment", slices.DeleteFunc(formats, func(f string) bool { return f == "%s" }))
}

// addFormats are the formats of the v.add(field, format, …) calls in the non-test Go files of
// dir: the field messages of a domain's ValidationError.
func addFormats(t *testing.T, dir string) []string {
	var formats []string
	for _, f := range parseSources(t, dir) {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "add" {
				return true
			}
			if format, ok := stringLit(call.Args[1]); ok {
				formats = append(formats, format)
			}
			return true
		})
	}
	return formats
}

// fieldErrorMessage is the Message of a FieldError literal: any composite literal with the
// keys Field and Message, its type written or elided (inside []FieldError{…}).
func fieldErrorMessage(n ast.Node) (string, bool) {
	lit, ok := n.(*ast.CompositeLit)
	if !ok {
		return "", false
	}
	var msg string
	var field, message bool
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		switch k, _ := kv.Key.(*ast.Ident); {
		case k == nil:
		case k.Name == "Field":
			field = true
		case k.Name == "Message":
			msg, message = stringLit(kv.Value)
		}
	}
	return msg, field && message
}

// errorText is the text of an errors.New or fmt.Errorf call.
func errorText(n ast.Node) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || (sel.Sel.Name != "New" && sel.Sel.Name != "Errorf") {
		return "", false
	}
	return stringLit(call.Args[0])
}

// requireTranslations fails for each format without its entry in ptMessages (verbs as %s).
func requireTranslations(t *testing.T, domain string, formats []string) {
	t.Helper()
	verb := regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)
	for _, format := range formats {
		if key := verb.ReplaceAllString(format, "%s"); ptMessages[key] == "" {
			t.Errorf("%s message %q needs ptMessages[%q]", domain, format, key)
		}
	}
}

func TestMessagesTranslateEveryDetailOfDecodeJSONAndCheckOrigin(t *testing.T) {
	var problems []*problem
	for _, tc := range badJSONBodies {
		var dst jsonTestBody
		var p *problem
		if errors.As(decodeJSON(jsonRequest(tc.body), &dst), &p) {
			problems = append(problems, p)
		}
	}
	r := jsonRequest("{}")
	r.Header.Set("Content-Type", "text/plain")
	problems = append(problems, checkJSONContentType(r.Header))
	r.Header.Set("Content-Type", "application/json; v=1")
	problems = append(problems, checkJSONContentType(r.Header))
	r.Header.Set("Content-Encoding", "gzip")
	problems = append(problems, checkJSONContentType(r.Header))
	r = jsonRequest(`{"name":"long"}`)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 4)
	var p *problem
	if errors.As(decodeJSON(r, &jsonTestBody{}), &p) {
		problems = append(problems, p)
	}
	for _, h := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.test"},
		{"Referer": "https://evil.test/"},
		{"Sec-Fetch-Site": "same-site"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		if errors.As(checkOrigin(r, testIssuer, nil), &p) {
			problems = append(problems, p)
		}
	}
	for _, p := range problems {
		if p == nil || p.Detail == "" {
			t.Errorf("problem without detail: %+v", p)
			continue
		}
		if _, ok := translate(p.Detail); !ok {
			t.Errorf("detail %q has no translation", p.Detail)
		}
	}
}

func TestMessagesTranslateWithTheMostSpecificTemplate(t *testing.T) {
	tests := []struct{ en, pt string }{
		{"must not be blank", "não pode ficar em branco"},
		{"must be at most 128 characters", "deve ter no máximo 128 caracteres"},
		{"must be at most 1h0m0s", "deve ser no máximo 1h0m0s"},
		{`contains unknown grant "x y"`, `contém o grant desconhecido "x y"`},
		{`the value of "owner.admin" must be true or false`, `o valor de "owner.admin" deve ser true ou false`},
		{`the value of "a string" must be a string`, `o valor de "a string" deve ser um texto`},
		{`key "Name" must be written "name"`, `a chave "Name" deve ser escrita "name"`},
	}
	for _, tc := range tests {
		if got, ok := translate(tc.en); !ok || got != tc.pt {
			t.Errorf("translate(%q) = %q, %v; want %q", tc.en, got, ok, tc.pt)
		}
	}
	for _, en := range []string{"", "something else entirely", "must be at most"} {
		if got, ok := translate(en); ok {
			t.Errorf("translate(%q) = %q, want no translation", en, got)
		}
	}
}

func TestPreferredLanguageFollowsAcceptLanguageWeights(t *testing.T) {
	tests := []struct{ name, header, want string }{
		{"no header means English", "", "en"},
		{"Brazilian Portuguese first means Portuguese", "pt-BR,pt;q=0.9,en;q=0.8", "pt-BR"},
		{"plain pt means Portuguese", "pt", "pt-BR"},
		{"European Portuguese is answered in Brazilian Portuguese", "pt-PT", "pt-BR"},
		{"tags are case-insensitive", "PT-br", "pt-BR"},
		{"English preferred over Portuguese means English", "en-US,pt;q=0.5", "en"},
		{"a higher weight later in the list wins", "en;q=0.5, pt;q=0.8", "pt-BR"},
		{"equal weights go to the first listed", "pt, en", "pt-BR"},
		{"equal weights go to the first listed, English first", "en, pt", "en"},
		{"an unsupported language first falls to the next supported one", "fr-FR,fr;q=0.9,pt;q=0.3", "pt-BR"},
		{"only unsupported languages mean English", "fr, de;q=0.5", "en"},
		{"a wildcard means English", "*", "en"},
		{"a wildcard above Portuguese means English", "*, pt;q=0.5", "en"},
		{"Portuguese above a wildcard means Portuguese", "pt;q=0.9, *;q=0.1", "pt-BR"},
		{"q=0 refuses Portuguese", "pt;q=0, fr", "en"},
		{"q=0.000 refuses Portuguese", "pt;q=0.000", "en"},
		{"an invalid weight ignores the item", "pt;q=2, en;q=0.1", "en"},
		{"a weight with too many decimals ignores the item", "pt;q=0.1234", "en"},
		{"a negative weight ignores the item", "pt;q=-1", "en"},
		{"a parameter other than q ignores the item", "pt;level=1", "en"},
		{"white space around items is allowed", "  pt-BR ;  q=0.9 ,en;q=0.1", "pt-BR"},
		{"garbage means English", ";;;,,,=q", "en"},
		{"a prefix of pt is not pt", "ptx, en;q=0.1", "en"},
		{"an underscore tag is not pt", "pt_BR", "en"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				r.Header.Set("Accept-Language", tc.header)
			}
			if got := preferredLanguage(r); got != tc.want {
				t.Errorf("preferredLanguage(%q) = %q, want %q", tc.header, got, tc.want)
			}
		})
	}
}

func TestPreferredLanguageReadsEveryAcceptLanguageHeader(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["Accept-Language"] = []string{"en;q=0.2", "pt;q=0.7"}
	if got := preferredLanguage(r); got != "pt-BR" {
		t.Fatalf("preferredLanguage = %q, want pt-BR", got)
	}
}

func decodeProblemBody(t *testing.T, w *httptest.ResponseRecorder) problem {
	t.Helper()
	var p problem
	if err := json.NewDecoder(w.Body).Decode(&p); err != nil {
		t.Fatalf("problem body: %v", err)
	}
	return p
}

func TestLocalizedWriteProblemAnswersInPortuguese(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := httptest.NewRequest(http.MethodPost, "/api/users", nil)
	r.Header.Set("Accept-Language", "pt-BR,pt;q=0.9,en;q=0.8")
	w := httptest.NewRecorder()
	writeProblem(w, r, log, &identity.ValidationError{Fields: []identity.FieldError{
		{Field: "name", Message: "must not be blank"},
		{Field: "password", Message: "must be at least 8 characters"},
		{Field: "x", Message: "a message nobody translated"},
	}})
	if got := w.Header().Get("Content-Language"); got != "pt-BR" {
		t.Errorf("Content-Language = %q, want pt-BR", got)
	}
	if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Accept-Language") {
		t.Errorf("Vary = %q, want Accept-Language", w.Header().Values("Vary"))
	}
	p := decodeProblemBody(t, w)
	if w.Code != http.StatusUnprocessableEntity || p.Code != "validation_failed" || p.Title != "A requisição tem campos inválidos." {
		t.Errorf("answer %d %+v, want 422 validation_failed in Portuguese", w.Code, p)
	}
	want := []string{"não pode ficar em branco", "deve ter pelo menos 8 caracteres", "a message nobody translated"}
	for i, fe := range p.Errors {
		if i >= len(want) || fe.Message != want[i] {
			t.Errorf("errors[%d] = %+v, want message %q", i, fe, want[min(i, len(want)-1)])
		}
	}
}

func TestLocalizedWriteProblemTranslatesSpecificTitlesAndDetails(t *testing.T) {
	tests := []struct {
		name, lang string
		p          *problem
		title      string
		detail     string
	}{
		{"a specific title has its own translation", "pt", newProblem(http.StatusUnauthorized, "invalid_token", "The session has ended; log in again."), "A sessão terminou; entre novamente.", ""},
		{"an untranslated title falls back to its code's", "pt", newProblem(http.StatusNotFound, "not_found", "No such thing."), "O recurso não existe.", ""},
		{"a detail is translated", "pt", jsonProblem(`duplicate key "name"`), "O corpo da requisição não é um JSON válido para este endpoint.", `chave "name" duplicada`},
		{"English keeps the call site's title", "en", newProblem(http.StatusUnauthorized, "invalid_token", "The session has ended; log in again."), "The session has ended; log in again.", ""},
		{"English keeps the detail", "en-GB", jsonProblem(`duplicate key "name"`), "The request body is not valid JSON for this endpoint.", `duplicate key "name"`},
		{"an unknown code keeps its title in Portuguese", "pt", newProblem(http.StatusTeapot, "teapot", "I am a teapot."), "I am a teapot.", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Language", tc.lang)
			w := httptest.NewRecorder()
			writeProblem(w, r, slog.New(slog.DiscardHandler), tc.p)
			p := decodeProblemBody(t, w)
			if p.Title != tc.title || p.Detail != tc.detail || p.Code != tc.p.Code || w.Code != tc.p.Status {
				t.Errorf("answer %d %+v, want title %q and detail %q", w.Code, p, tc.title, tc.detail)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

// A problem value shared between requests must come out of writeProblem unchanged.
func TestLocalizedWriteProblemLeavesASharedProblemIntact(t *testing.T) {
	shared := newProblem(http.StatusUnprocessableEntity, "validation_failed", "The request has invalid fields.")
	shared.Errors = []fieldError{{Field: "email", Message: "is required"}}
	shared.Detail = "the body is empty"
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Accept-Language", []string{"pt", "en"}[i%2])
			writeProblem(httptest.NewRecorder(), r, slog.New(slog.DiscardHandler), shared)
		})
	}
	wg.Wait()
	if shared.Title != "The request has invalid fields." || shared.Detail != "the body is empty" || shared.Errors[0].Message != "is required" {
		t.Fatalf("writeProblem changed the shared problem: %+v", shared)
	}
}
