// Package mail delivers the e-mails of the account flows (password reset, invitation, e-mail
// verification and security notices): it renders them from embedded templates, queues them so
// that no request waits for a mail server, and hands them to an SMTP server or, when none is
// configured, to an outbox directory of .eml files.
package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Message is one e-mail to one recipient. HTML is optional; when set the message is sent as
// multipart/alternative with Text as the plain-text part.
type Message struct {
	To, Subject, Text, HTML string
}

// Sender delivers a message. Implementations must return promptly once ctx is done.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// DefaultFrom is the sender address of the messages the Outbox writes.
const DefaultFrom = "Portaria <noreply@localhost>"

var (
	// ErrHeaderInjection reports a control character (such as CR or LF) in a header value.
	ErrHeaderInjection = errors.New("mail: control character in a header value")
	// ErrInvalidAddress reports an address that is not one RFC 5322 mailbox.
	ErrInvalidAddress = errors.New("mail: invalid e-mail address")
	// ErrPermanent marks a failure that retrying cannot fix (the server answered 5xx, or the
	// message itself is invalid); the Queue does not retry it.
	ErrPermanent = errors.New("mail: permanent failure")
)

// hasControl reports whether s holds a character that must never reach a header: CR and LF
// would start a new header line, the others have no business in an address or subject.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// parseAddress parses exactly one mailbox, refusing control characters first so that no
// CR/LF can ever reach a header whatever net/mail would make of it.
func parseAddress(s string) (*netmail.Address, error) {
	if hasControl(s) {
		return nil, ErrHeaderInjection
	}
	addr, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, ErrInvalidAddress
	}
	return addr, nil
}

// validate checks everything that ends up in a header and returns the parsed recipient.
// Headers are built only from To and Subject (plus our own From, Date and Message-ID).
func (m Message) validate() (*netmail.Address, error) {
	to, err := parseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("%w: recipient: %w", ErrPermanent, err)
	}
	if hasControl(m.Subject) {
		return nil, fmt.Errorf("%w: subject: %w", ErrPermanent, ErrHeaderInjection)
	}
	if strings.TrimSpace(m.Subject) == "" {
		return nil, fmt.Errorf("%w: mail: empty subject", ErrPermanent)
	}
	if m.Text == "" {
		return nil, fmt.Errorf("%w: mail: empty text body", ErrPermanent)
	}
	return to, nil
}

// compose builds the RFC 5322 message: UTF-8, quoted-printable bodies, RFC 2047 subject when
// it is not ASCII, multipart/alternative when there is an HTML part.
func compose(m Message, to, from *netmail.Address, now time.Time) (*gomail.Msg, error) {
	id, err := messageID(from)
	if err != nil {
		return nil, err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(id)
	// RFC 3834: keeps vacation responders and the like from answering.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// messageID is a random id on the sender's domain, which reveals nothing about the host.
func messageID(from *netmail.Address) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("mail: message id: %w", err)
	}
	domain := "localhost"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 && i < len(from.Address)-1 {
		domain = from.Address[i+1:]
	}
	return hex.EncodeToString(b[:]) + "@" + domain, nil
}
