package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind names an account e-mail.
type Kind string

// The account e-mails. PasswordReset, Invitation and VerifyEmail need Data.Link; the two
// notices take an optional one (where to reset the password).
const (
	PasswordReset   Kind = "password_reset"
	Invitation      Kind = "invitation"
	VerifyEmail     Kind = "verify_email"
	PasswordChanged Kind = "password_changed"
	MFAChanged      Kind = "mfa_changed"
)

var kinds = []Kind{PasswordReset, Invitation, VerifyEmail, PasswordChanged, MFAChanged}

// needsLink reports whether the e-mail exists to carry a link.
func (k Kind) needsLink() bool {
	return k == PasswordReset || k == Invitation || k == VerifyEmail
}

// Data fills a template. Link must be an absolute http(s) URL built from configuration, never
// from request headers (PR-03). ExpiresIn, when positive, is stated in the e-mail.
type Data struct {
	To, Name, Link, Code string
	ExpiresIn            time.Duration
}

// view is what templates see: every value already cleaned, and escaped again by html/template
// in the HTML part.
type view struct {
	Lang, HTMLLang, Subject string
	Email, Name, Link, Code string
	ExpiresIn               string
}

const (
	langEN = "en"
	langPT = "pt"
)

//go:embed templates
var templateFS embed.FS

type templateSet struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// parsedTemplates parses the embedded templates once. They are constant, so an error here is a
// bug that the package's tests catch; Render reports it rather than panicking.
var parsedTemplates = sync.OnceValues(func() (map[string]templateSet, error) {
	sets := make(map[string]templateSet)
	for _, lang := range []string{langEN, langPT} {
		common := "templates/" + lang + "/common.tmpl"
		for _, k := range kinds {
			base := "templates/" + lang + "/" + string(k)
			text, err := texttemplate.New(string(k)).Option("missingkey=error").ParseFS(templateFS, common, base+".txt")
			if err != nil {
				return nil, err
			}
			html, err := htmltemplate.New(string(k)).Option("missingkey=error").ParseFS(templateFS, "templates/layout.html", common, base+".html")
			if err != nil {
				return nil, err
			}
			sets[lang+"/"+string(k)] = templateSet{text: text, html: html}
		}
	}
	return sets, nil
})

// language maps a language tag to a template language: "pt", "pt-BR" and "pt_BR" (in any
// case) are Brazilian Portuguese, anything else English.
func language(tag string) string {
	switch strings.ToLower(strings.ReplaceAll(strings.TrimSpace(tag), "_", "-")) {
	case "pt", "pt-br":
		return langPT
	}
	return langEN
}

// Render builds the e-mail of the given kind in the given language, with a plain-text body
// and an HTML alternative. Only To and the fixed subject reach headers; To must be one valid
// address. Name and Code are stripped of control characters (so they cannot forge lines in the
// text part) and escaped in the HTML part.
func Render(kind Kind, lang string, data Data) (Message, error) {
	sets, err := parsedTemplates()
	if err != nil {
		return Message{}, fmt.Errorf("mail: templates: %w", err)
	}
	l := language(lang)
	set, ok := sets[l+"/"+string(kind)]
	if !ok {
		return Message{}, fmt.Errorf("mail: unknown e-mail kind %q", kind)
	}
	to, err := parseAddress(data.To)
	if err != nil {
		return Message{}, fmt.Errorf("mail: %s recipient: %w", kind, err)
	}
	switch {
	case data.Link != "":
		if err := checkLink(data.Link); err != nil {
			return Message{}, fmt.Errorf("mail: %s: %w", kind, err)
		}
	case kind.needsLink():
		return Message{}, fmt.Errorf("mail: %s needs a link", kind)
	}
	v := view{
		Lang:      l,
		HTMLLang:  "en",
		Email:     to.Address,
		Name:      clean(data.Name, 100),
		Link:      data.Link,
		Code:      clean(data.Code, 100),
		ExpiresIn: duration(l, data.ExpiresIn),
	}
	if l == langPT {
		v.HTMLLang = "pt-BR"
	}
	var subject, text, html bytes.Buffer
	if err := set.text.ExecuteTemplate(&subject, "subject", v); err != nil {
		return Message{}, fmt.Errorf("mail: %s subject: %w", kind, err)
	}
	v.Subject = strings.TrimSpace(subject.String())
	if err := set.text.ExecuteTemplate(&text, "text", v); err != nil {
		return Message{}, fmt.Errorf("mail: %s text: %w", kind, err)
	}
	if err := set.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return Message{}, fmt.Errorf("mail: %s html: %w", kind, err)
	}
	m := Message{To: data.To, Subject: v.Subject, Text: text.String(), HTML: html.String()}
	if _, err := m.validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}

// checkLink accepts only absolute http(s) URLs without spaces, quotes or control characters,
// so that the text part shows exactly the address the HTML part links to.
func checkLink(link string) error {
	if hasControl(link) || strings.ContainsAny(link, " <>\"'`\\") {
		return errors.New("link contains characters not allowed in a URL")
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("link must be an absolute http(s) URL")
	}
	return nil
}

// clean turns control characters into spaces, drops bidirectional overrides (which can make
// text read differently from what it is), collapses runs of spaces and cuts s to max runes.
func clean(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		switch {
		case r == utf8.RuneError, isBidiControl(r):
			continue
		case unicode.IsControl(r) || unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if n == max {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func isBidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') || r == '\u200e' || r == '\u200f'
}

// duration states d in whole days (from two days up), hours or (rounded up) minutes, in the
// e-mail's language.
func duration(lang string, d time.Duration) string {
	if d <= 0 {
		return ""
	}
	type unit struct{ one, many string }
	var n int64
	var u unit
	day, hour, minute := unit{"day", "days"}, unit{"hour", "hours"}, unit{"minute", "minutes"}
	if lang == langPT {
		day, hour, minute = unit{"dia", "dias"}, unit{"hora", "horas"}, unit{"minuto", "minutos"}
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		n, u = int64(d/(24*time.Hour)), day
	case d%time.Hour == 0:
		n, u = int64(d/time.Hour), hour
	default:
		n, u = int64((d+time.Minute-1)/time.Minute), minute
	}
	if n == 1 {
		return "1 " + u.one
	}
	return fmt.Sprintf("%d %s", n, u.many)
}
