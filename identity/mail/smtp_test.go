package mail

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const testFrom = "Portaria <noreply@example.com>"

func newTestSender(t *testing.T, rawURL string) *SMTPSender {
	t.Helper()
	s, err := NewSMTPSender(rawURL, testFrom)
	if err != nil {
		t.Fatalf("NewSMTPSender(%q): %v", rawURL, err)
	}
	return s
}

func TestSMTPSenderDeliversFromToSubjectAndBody(t *testing.T) {
	srv := &smtpServer{}
	srv.start(t)
	s := newTestSender(t, "smtp://"+srv.Addr)

	m := Message{
		To:      "Alice <alice@example.com>",
		Subject: "Redefinição de senha ✓",
		Text:    "Olá, abra https://auth.example.com/reset?token=abc\n",
		HTML:    "<p>Olá</p>",
	}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("server received %d messages, want 1", len(got))
	}
	if got[0].From != "noreply@example.com" || len(got[0].To) != 1 || got[0].To[0] != "alice@example.com" {
		t.Errorf("envelope = %q -> %q", got[0].From, got[0].To)
	}
	p := parseMessage(t, got[0].Data)
	if from, err := p.Header.AddressList("From"); err != nil || from[0].Address != "noreply@example.com" {
		t.Errorf("From = %v, %v", from, err)
	}
	if to, err := p.Header.AddressList("To"); err != nil || to[0].Address != "alice@example.com" {
		t.Errorf("To = %v, %v", to, err)
	}
	if p.Subject != m.Subject {
		t.Errorf("Subject = %q, want %q", p.Subject, m.Subject)
	}
	if raw := p.Header.Get("Subject"); !strings.HasPrefix(raw, "=?") {
		t.Errorf("raw Subject %q is not RFC 2047 encoded", raw)
	}
	if p.Text != m.Text || p.HTML != m.HTML {
		t.Errorf("bodies = %q / %q", p.Text, p.HTML)
	}
}

func TestSMTPSenderAuthenticatesWithPlainOrLogin(t *testing.T) {
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		t.Run(mech, func(t *testing.T) {
			srv := &smtpServer{user: "app", pass: "s3cr3t/pw", mechs: []string{mech}}
			srv.start(t)

			s := newTestSender(t, "smtp://app:s3cr3t%2Fpw@"+srv.Addr)
			if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := srv.messages(); len(got) != 1 || got[0].AuthUser != "app" {
				t.Fatalf("received %+v, want one message from user app", got)
			}

			bad := newTestSender(t, "smtp://app:wrong-password@"+srv.Addr)
			err := bad.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"})
			if err == nil {
				t.Fatal("Send with a wrong password succeeded")
			}
			if strings.Contains(err.Error(), "wrong-password") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}

func TestSMTPSenderUsesSTARTTLSWhenOffered(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv := &smtpServer{tlsConfig: serverTLS, user: "app", pass: "pw"}
	srv.start(t)

	for _, rawURL := range []string{"smtp://app:pw@" + srv.Addr, "smtp://app:pw@" + srv.Addr + "?tls=required"} {
		s := newTestSender(t, rawURL)
		s.tlsConfig = clientTLS
		if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"}); err != nil {
			t.Fatalf("%s: Send: %v", rawURL, err)
		}
	}
	for _, m := range srv.messages() {
		if !m.TLS {
			t.Error("message was sent without TLS although the server offered STARTTLS")
		}
	}
}

func TestSMTPSenderWithTLSRequiredRefusesServerWithoutSTARTTLS(t *testing.T) {
	srv := &smtpServer{}
	srv.start(t)
	s := newTestSender(t, "smtp://"+srv.Addr+"?tls=required")

	if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"}); err == nil {
		t.Fatal("Send succeeded over a connection without TLS")
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestSMTPSenderSpeaksImplicitTLSForSMTPS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv := &smtpServer{tlsConfig: serverTLS, implicit: true, user: "app", pass: "pw"}
	srv.start(t)
	s := newTestSender(t, "smtps://app:pw@"+srv.Addr)
	s.tlsConfig = clientTLS

	if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.messages(); len(got) != 1 || !got[0].TLS || got[0].AuthUser != "app" {
		t.Fatalf("received %+v", got)
	}
}

func TestSMTPSenderFailsFastWhenTheServerRefusesTheConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := newTestSender(t, "smtp://"+addr)

	start := time.Now()
	if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"}); err == nil {
		t.Fatal("Send succeeded without a server")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send took %v", d)
	}
}

func TestSMTPSenderGivesUpOnASilentServerWithinTheTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = conn.Close() }) // accept, then never greet
		}
	}()

	t.Run("sender timeout", func(t *testing.T) {
		s := newTestSender(t, "smtp://"+ln.Addr().String())
		s.timeout = 300 * time.Millisecond
		start := time.Now()
		if err := s.Send(context.Background(), Message{To: "bob@example.com", Subject: "Hi", Text: "hi"}); err == nil {
			t.Fatal("Send succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Send took %v with a 300ms timeout", d)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		s := newTestSender(t, "smtp://"+ln.Addr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(ctx, Message{To: "bob@example.com", Subject: "Hi", Text: "hi"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send = %v, want a deadline error", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Send took %v with a 200ms deadline", d)
		}
	})
}

func TestSMTPSenderMarksRejectedRecipientsPermanent(t *testing.T) {
	srv := &smtpServer{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}
	srv.start(t)
	s := newTestSender(t, "smtp://"+srv.Addr)

	err := s.Send(context.Background(), Message{To: "nobody@example.com", Subject: "Hi", Text: "hi"})
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("Send = %v, want ErrPermanent", err)
	}
}

func TestSMTPSenderRefusesHeaderInjection(t *testing.T) {
	srv := &smtpServer{}
	srv.start(t)
	s := newTestSender(t, "smtp://"+srv.Addr)

	for _, m := range []Message{
		{To: "bob@example.com\r\nBcc: eve@example.com", Subject: "Hi", Text: "hi"},
		{To: "bob@example.com", Subject: "Hi\r\nBcc: eve@example.com", Text: "hi"},
		{To: "bob@example.com", Subject: "Hi\nBcc: eve@example.com", Text: "hi"},
	} {
		if err := s.Send(context.Background(), m); !errors.Is(err, ErrHeaderInjection) {
			t.Errorf("Send(%q, %q) = %v, want ErrHeaderInjection", m.To, m.Subject, err)
		}
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("server received %d messages", n)
	}
}

func TestNewSMTPSender(t *testing.T) {
	const password = "hunter2-secret"
	valid := []struct {
		url, want string
	}{
		{"smtp://mail.example.com", "smtp://mail.example.com:587"},
		{"smtp://u:" + password + "@mail.example.com:25", "smtp://u@mail.example.com:25"},
		{"smtp://u:" + password + "@mail.example.com:2525?tls=required", "smtp://u@mail.example.com:2525?tls=required"},
		{"smtps://u:" + password + "@mail.example.com", "smtps://u@mail.example.com:465"},
		{"smtp://[::1]:25", "smtp://[::1]:25"},
	}
	for _, tc := range valid {
		s, err := NewSMTPSender(tc.url, testFrom)
		if err != nil {
			t.Errorf("NewSMTPSender(%q): %v", tc.url, err)
			continue
		}
		if got := s.String(); got != tc.want {
			t.Errorf("NewSMTPSender(%q).String() = %q, want %q", tc.url, got, tc.want)
		}
	}

	invalid := []struct{ url, from string }{
		{"http://u:" + password + "@mail.example.com", testFrom},
		{"smtp://u:" + password + "@", testFrom},
		{"smtp://u:" + password + "@mail.example.com:99999", testFrom},
		{"smtp://u:" + password + "@mail.example.com:abc", testFrom},
		{"smtp://u:" + password + "@mail.example.com?tls=maybe", testFrom},
		{"smtp://u:" + password + "@mail.example.com?tsl=required", testFrom},
		{"smtp://u:" + password + "@mail.example.com/path", testFrom},
		{"smtp://u:" + password + "%zz@mail.example.com", testFrom},
		{"smtp://u:" + password + "@mail.example.com", "not an address"},
		{"smtp://u:" + password + "@mail.example.com", "a@example.com\r\nBcc: b@example.com"},
	}
	for _, tc := range invalid {
		_, err := NewSMTPSender(tc.url, tc.from)
		if err == nil {
			t.Errorf("NewSMTPSender(%q, %q) succeeded", tc.url, tc.from)
			continue
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("NewSMTPSender(%q) error reveals the password: %v", tc.url, err)
		}
	}
}
