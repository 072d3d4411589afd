package mail

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const testLink = "https://auth.example.com/reset?token=b64url-Token_123"

func TestTemplatesParse(t *testing.T) {
	if _, err := parsedTemplates(); err != nil {
		t.Fatal(err)
	}
}

func TestRenderEveryKindInBothLanguages(t *testing.T) {
	for _, kind := range kinds {
		for _, lang := range []string{"en", "pt-BR"} {
			t.Run(string(kind)+"/"+lang, func(t *testing.T) {
				m, err := Render(kind, lang, Data{To: "ana@example.com", Name: "Ana", Link: testLink, ExpiresIn: 24 * time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				if m.To != "ana@example.com" || m.Subject == "" {
					t.Errorf("To %q, Subject %q", m.To, m.Subject)
				}
				for part, body := range map[string]string{"text": m.Text, "html": m.HTML} {
					if !strings.Contains(body, testLink) {
						t.Errorf("%s part lacks the link:\n%s", part, body)
					}
					if !strings.Contains(body, "Ana") || !strings.Contains(body, "ana@example.com") {
						t.Errorf("%s part lacks the name or address:\n%s", part, body)
					}
					if strings.Contains(body, "<no value>") || strings.Contains(body, "{{") {
						t.Errorf("%s part has template residue:\n%s", part, body)
					}
				}
				if kind.needsLink() {
					expires := map[string]string{"en": "24 hours", "pt-BR": "24 horas"}[lang]
					if !strings.Contains(m.Text, expires) {
						t.Errorf("text does not state the expiry %q:\n%s", expires, m.Text)
					}
				}
				if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") {
					t.Errorf("html part is not a document:\n%s", m.HTML)
				}
			})
		}
	}
}

func TestRenderPicksPortugueseOnlyForPtAndPtBR(t *testing.T) {
	for lang, want := range map[string]string{
		"pt": "Redefina sua senha", "pt-BR": "Redefina sua senha", "pt_BR": "Redefina sua senha", "PT-br": "Redefina sua senha",
		"en": "Reset your password", "": "Reset your password", "fr": "Reset your password", "pt-PT": "Reset your password",
	} {
		m, err := Render(PasswordReset, lang, Data{To: "ana@example.com", Link: testLink})
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != want {
			t.Errorf("Render(lang %q) subject = %q, want %q", lang, m.Subject, want)
		}
	}
}

func TestRenderEscapesValuesInTheHTMLPart(t *testing.T) {
	m, err := Render(Invitation, "en", Data{
		To:   "ana@example.com",
		Name: `<script>alert(1)</script><img src=x onerror=alert(2)>`,
		Code: `"><b>code</b>`,
		Link: "https://auth.example.com/invite?token=abc&next=%2Fhome",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"<script", "<img", "<b>code"} {
		if strings.Contains(m.HTML, raw) {
			t.Errorf("html part holds unescaped %q:\n%s", raw, m.HTML)
		}
	}
	if !strings.Contains(m.HTML, "&lt;script&gt;") || !strings.Contains(m.HTML, `href="https://auth.example.com/invite?token=abc&amp;next=%2Fhome"`) {
		t.Errorf("html part does not carry the escaped values:\n%s", m.HTML)
	}
}

func TestRenderKeepsNamesOutOfHeadersAndOffTheirOwnLines(t *testing.T) {
	m, err := Render(PasswordChanged, "en", Data{To: "ana@example.com", Name: "Eve\r\nBcc: victim@example.com\r\n\r\nFake body\u202e"})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(m.Text, "\n") {
		if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "Fake body") {
			t.Errorf("the name forged a line: %q", line)
		}
	}
	if strings.ContainsRune(m.Text, '\u202e') || strings.ContainsRune(m.Text, '\r') {
		t.Errorf("text keeps control characters: %q", m.Text)
	}

	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadOutbox(o.Dir())
	if err != nil {
		t.Fatal(err)
	}
	p := parseMessage(t, mustRead(t, emlFiles(t, o.Dir())[0]))
	if len(got) != 1 || p.Header.Get("Bcc") != "" || p.Subject != "Your password was changed" {
		t.Errorf("headers changed by the name: %v", p.Header)
	}
}

func TestRenderRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		kind Kind
		data Data
		want error
	}{
		"a recipient with CR/LF":       {PasswordReset, Data{To: "ana@example.com\r\nBcc: eve@example.com", Link: testLink}, ErrHeaderInjection},
		"a recipient with LF":          {PasswordReset, Data{To: "ana@example.com\nBcc: eve@example.com", Link: testLink}, ErrHeaderInjection},
		"two recipients":               {PasswordReset, Data{To: "ana@example.com, eve@example.com", Link: testLink}, ErrInvalidAddress},
		"a malformed recipient":        {PasswordReset, Data{To: "not an address", Link: testLink}, ErrInvalidAddress},
		"a javascript link":            {PasswordReset, Data{To: "ana@example.com", Link: "javascript:alert(1)"}, nil},
		"a relative link":              {VerifyEmail, Data{To: "ana@example.com", Link: "/verify?token=x"}, nil},
		"a link with a newline":        {VerifyEmail, Data{To: "ana@example.com", Link: "https://a.example/\nBcc: x"}, nil},
		"a reset without a link":       {PasswordReset, Data{To: "ana@example.com", Code: "123456"}, nil},
		"an unknown kind":              {Kind("welcome"), Data{To: "ana@example.com", Link: testLink}, nil},
		"an invitation without a link": {Invitation, Data{To: "ana@example.com"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(tc.kind, "en", tc.data)
			if err == nil {
				t.Fatal("Render succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Render = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRenderNoticesNeedNoLink(t *testing.T) {
	for _, kind := range []Kind{PasswordChanged, MFAChanged} {
		m, err := Render(kind, "pt", Data{To: "ana@example.com"})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if strings.Contains(m.HTML, "href") {
			t.Errorf("%s: html has a link although none was given:\n%s", kind, m.HTML)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		lang string
		d    time.Duration
		want string
	}{
		{langEN, 0, ""},
		{langEN, 30 * time.Minute, "30 minutes"},
		{langEN, 90 * time.Second, "2 minutes"},
		{langEN, time.Hour, "1 hour"},
		{langEN, 24 * time.Hour, "24 hours"},
		{langEN, 7 * 24 * time.Hour, "7 days"},
		{langPT, time.Minute, "1 minuto"},
		{langPT, 24 * time.Hour, "24 horas"},
		{langPT, 7 * 24 * time.Hour, "7 dias"},
	} {
		if got := duration(tc.lang, tc.d); got != tc.want {
			t.Errorf("duration(%s, %v) = %q, want %q", tc.lang, tc.d, got, tc.want)
		}
	}
}
