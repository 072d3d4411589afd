package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"slices"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// smtpTimeout bounds dialling and, separately, the whole of one Send (RL-07).
const smtpTimeout = 10 * time.Second

// SMTPSender sends each message over a new SMTP connection. It is safe for concurrent use.
type SMTPSender struct {
	host        string
	port        int
	implicitTLS bool // smtps://
	policy      gomail.TLSPolicy
	user, pass  string
	auth        bool
	from        *netmail.Address
	timeout     time.Duration
	tlsConfig   *tls.Config
	now         func() time.Time
}

// NewSMTPSender parses rawURL and returns a sender that uses it:
//
//	smtp://user:pass@host:port              STARTTLS when the server offers it (default port 587)
//	smtp://user:pass@host:port?tls=required STARTTLS or fail
//	smtps://user:pass@host:port             implicit TLS (default port 465)
//
// With credentials the sender authenticates with PLAIN, or LOGIN when PLAIN is not offered, and
// only over TLS or to a loopback host: credentials never cross the network in clear text, so an
// unencrypted server that is not on this machine fails to authenticate. from is the From
// address, with or without a display name. Errors never contain the password.
func NewSMTPSender(rawURL, from string) (*SMTPSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url's errors quote the whole URL, password included.
		return nil, errors.New("mail: SMTP URL is not a valid URL (want smtp://user:pass@host:port)")
	}
	s := &SMTPSender{
		policy:  gomail.TLSOpportunistic,
		timeout: smtpTimeout,
		now:     time.Now,
	}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.port, s.implicitTLS = 465, true
	default:
		return nil, fmt.Errorf("mail: SMTP URL %s: scheme must be smtp or smtps", u.Redacted())
	}
	s.host = u.Hostname()
	if s.host == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("mail: SMTP URL %s: want %s://user:pass@host:port", u.Redacted(), u.Scheme)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("mail: SMTP URL %s: invalid port", u.Redacted())
		}
		s.port = n
	}
	for key, values := range u.Query() {
		switch {
		case key == "tls" && len(values) == 1 && values[0] == "required":
			s.policy = gomail.TLSMandatory
		default:
			// A misspelt option must not silently weaken transport security.
			return nil, fmt.Errorf("mail: SMTP URL %s: unknown option %q (only tls=required)", u.Redacted(), key)
		}
	}
	if u.User != nil {
		s.auth = true
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	if s.from, err = parseAddress(from); err != nil {
		return nil, fmt.Errorf("mail: From address: %w", err)
	}
	s.tlsConfig = &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
	return s, nil
}

// String describes the server without the password, so logging the sender is safe.
func (s *SMTPSender) String() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(s.host, strconv.Itoa(s.port))}
	if s.implicitTLS {
		u.Scheme = "smtps"
	}
	if s.auth {
		u.User = url.User(s.user)
	}
	if s.policy == gomail.TLSMandatory && !s.implicitTLS {
		u.RawQuery = "tls=required"
	}
	return u.String()
}

// Send delivers m, giving up after the sender's timeout or when ctx ends, whichever is first.
// Errors caused by a 5xx answer wrap ErrPermanent.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	to, err := m.validate()
	if err != nil {
		return err
	}
	msg, err := compose(m, to, s.from, s.now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSPolicy(s.policy),
		gomail.WithTLSConfig(s.tlsConfig.Clone()),
		gomail.WithDialContextFunc(s.dialer(ctx)),
	}
	if s.implicitTLS {
		opts = append(opts, gomail.WithSSL())
	}
	if s.auth {
		opts = append(opts, gomail.WithSMTPAuthCustom(&plainOrLogin{user: s.user, pass: s.pass, host: s.host}))
	}
	// A client per message: the library's client keeps per-connection state, and one
	// connection per message is plenty for account e-mail.
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return fmt.Errorf("mail: SMTP client for %s: %w", s, err)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("mail: sending via %s: %w (%w)", s, ctx.Err(), err)
	}
	if se := (*gomail.SendError)(nil); errors.As(err, &se) && se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
		return fmt.Errorf("mail: sending via %s: %w (%w)", s, err, ErrPermanent)
	}
	return fmt.Errorf("mail: sending via %s: %w", s, err)
}

// dialer connects (with TLS at once for smtps) and closes the connection when ctx ends, so
// that ctx bounds the whole conversation, not just the dial. It returns the bare *tls.Conn so
// that the SMTP client knows the connection is encrypted.
func (s *SMTPSender) dialer(ctx context.Context) gomail.DialContextFunc {
	return func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{}
		var (
			conn net.Conn
			err  error
		)
		if s.implicitTLS {
			conn, err = (&tls.Dialer{NetDialer: d, Config: s.tlsConfig.Clone()}).DialContext(dialCtx, network, addr)
		} else {
			conn, err = d.DialContext(dialCtx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	}
}

// plainOrLogin picks PLAIN, else LOGIN, from what the server advertises. Both refuse to run
// over an unencrypted connection unless the server is on loopback.
type plainOrLogin struct {
	user, pass, host string
	chosen           gosmtp.Auth
}

func (a *plainOrLogin) Start(server *gosmtp.ServerInfo) (string, []byte, error) {
	switch {
	case slices.Contains(server.Auth, "PLAIN"):
		a.chosen = gosmtp.PlainAuth("", a.user, a.pass, a.host, false)
	case slices.Contains(server.Auth, "LOGIN"):
		a.chosen = gosmtp.LoginAuth(a.user, a.pass, a.host, false)
	default:
		return "", nil, errors.New("mail: SMTP server offers neither PLAIN nor LOGIN authentication")
	}
	return a.chosen.Start(server)
}

func (a *plainOrLogin) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.chosen.Next(fromServer, more)
}
