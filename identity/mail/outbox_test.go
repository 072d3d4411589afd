package mail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func TestOutboxWritesParseablePrivateEmlFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "outbox")
	o, err := NewOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("outbox dir: %v, %v; want mode 0700", fi.Mode(), err)
	}

	m := Message{To: "ana@example.com", Subject: "Sua senha foi alterada", Text: "Olá, Ana.\n", HTML: "<p>Olá, Ana.</p>"}
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}

	files := emlFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("outbox holds %v, want one .eml file", files)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("outbox holds %d entries, want only the message (no temporary file left)", len(entries))
	}

	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	p := parseMessage(t, raw)
	for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version"} {
		if p.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if _, err := p.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if to, err := p.Header.AddressList("To"); err != nil || to[0].Address != "ana@example.com" {
		t.Errorf("To = %v, %v", to, err)
	}
	if p.Subject != m.Subject || p.Text != m.Text || p.HTML != m.HTML {
		t.Errorf("got subject %q, text %q, html %q", p.Subject, p.Text, p.HTML)
	}
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
		t.Errorf("Content-Type = %q, want multipart/alternative", ct)
	}
}

func TestOutboxWritesPlainTextAloneWithoutHTML(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Send(context.Background(), Message{To: "ana@example.com", Subject: "Hi", Text: "just text\n"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(emlFiles(t, o.Dir())[0])
	if err != nil {
		t.Fatal(err)
	}
	p := parseMessage(t, raw)
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(strings.ToLower(ct), "utf-8") {
		t.Errorf("Content-Type = %q, want text/plain UTF-8", ct)
	}
	if p.Text != "just text\n" {
		t.Errorf("text = %q", p.Text)
	}
}

func TestOutboxFileNamesSortByTime(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	o.now = func() time.Time { clock = clock.Add(time.Millisecond); return clock }
	for i := range 12 {
		if err := o.Send(context.Background(), Message{To: "ana@example.com", Subject: fmt.Sprintf("message %02d", i), Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range emlFiles(t, o.Dir()) {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := parseMessage(t, raw).Subject, fmt.Sprintf("message %02d", i); got != want {
			t.Errorf("file %d (%s) holds %q, want %q", i, filepath.Base(name), got, want)
		}
	}
}

func TestOutboxReadersNeverSeeAPartialFile(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 10
	body := strings.Repeat("a long line of text that makes the message large\n", 500) + "END\n"

	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if err := o.Send(context.Background(), Message{To: "ana@example.com", Subject: "big", Text: body}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	checked := map[string]bool{}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		for _, name := range emlFiles(t, o.Dir()) {
			if checked[name] {
				continue
			}
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if p := parseMessage(t, raw); p.Text != body {
				t.Fatalf("%s: partial message (%d bytes of text)", name, len(p.Text))
			}
			checked[name] = true
		}
	}
	if len(checked) != writers*each {
		t.Errorf("checked %d files, want %d", len(checked), writers*each)
	}
}

func TestOutboxRefusesHeaderInjection(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	err = o.Send(context.Background(), Message{To: "ana@example.com\nBcc: eve@example.com", Subject: "Hi", Text: "x"})
	if !errors.Is(err, ErrHeaderInjection) {
		t.Fatalf("Send = %v, want ErrHeaderInjection", err)
	}
	if files := emlFiles(t, o.Dir()); len(files) != 0 {
		t.Fatalf("outbox holds %v", files)
	}
}

func TestReadOutboxReturnsTheMessagesAsSent(t *testing.T) {
	o, err := NewOutbox(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first, err := Render(PasswordReset, "pt-BR", Data{To: "ana@example.com", Name: "Ana", Link: "https://auth.example.com/reset?token=QmFzZTY0dXJsLXRva2VuLXRoYXQtaXMtbG9uZy1lbm91Z2gtdG8td3JhcA", ExpiresIn: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	second := Message{To: "bob@example.com", Subject: "Plain", Text: "only text\n"}
	for _, m := range []Message{first, second} {
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadOutbox(o.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != first || got[1] != second {
		t.Fatalf("ReadOutbox = %+v\nwant %+v and %+v", got, first, second)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
