package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Outbox writes each message as an .eml file into a directory instead of sending it: the
// delivery used when no SMTP server is configured, and a mailbox that tests can read.
//
// Files are named <UTC time>-<random>.eml, so that sorting the names sorts them by time, and
// appear whole or not at all (temporary file, then rename). They hold live tokens, hence the
// 0600 files in a 0700 directory.
type Outbox struct {
	dir  string
	from *netmail.Address
	now  func() time.Time
}

// NewOutbox creates dir (mode 0700) when it does not exist and returns an outbox writing there.
// An existing directory keeps its permissions.
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("mail: outbox directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	from, err := parseAddress(DefaultFrom)
	if err != nil {
		return nil, err
	}
	return &Outbox{dir: dir, from: from, now: time.Now}, nil
}

// Dir is the directory the outbox writes to.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m to a new file in the outbox directory.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	to, err := m.validate()
	if err != nil {
		return err
	}
	now := o.now()
	msg, err := compose(m, to, o.from, now)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("mail: outbox: encoding message: %w", err)
	}
	name, err := outboxName(now)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(o.dir, name), buf.Bytes()); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	return nil
}

// outboxName is e.g. 20260102T150405.123456789Z-0123456789abcdef.eml.
func outboxName(now time.Time) (string, error) {
	var b [8]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("mail: outbox: file name: %w", err)
	}
	return now.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b[:]) + ".eml", nil
}

// writeFileAtomic writes data to a hidden temporary file (mode 0600, never named *.eml) in the
// target's directory, flushes it and renames it into place, so a reader listing *.eml never
// sees a partial message.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".writing-*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadOutbox decodes the messages of an outbox directory, oldest first: To (the bare address),
// Subject, Text and HTML as they were sent. It is for tests and development tools that need
// the link a message carries.
func ReadOutbox(dir string) ([]Message, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	msgs := make([]Message, 0, len(names))
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		m, err := parseEML(raw)
		if err != nil {
			return nil, fmt.Errorf("mail: %s: %w", filepath.Base(name), err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func parseEML(raw []byte) (Message, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, err
	}
	var m Message
	if m.Subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Message{}, err
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 {
		return Message{}, fmt.Errorf("To: %w", ErrInvalidAddress)
	}
	m.To = to[0].Address
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Message{}, err
	}
	if mediaType != "multipart/alternative" {
		err = m.setPart(mediaType, msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		return m, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return Message{}, err
		}
		partType, _, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			return Message{}, err
		}
		if err := m.setPart(partType, part.Header.Get("Content-Transfer-Encoding"), part); err != nil {
			return Message{}, err
		}
	}
}

func (m *Message) setPart(mediaType, encoding string, body io.Reader) error {
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	switch mediaType {
	case "text/plain":
		m.Text = text
	case "text/html":
		m.HTML = text
	}
	return nil
}
