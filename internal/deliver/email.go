package deliver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// email makes one attempt to send j through the SMTP server.
func (s *Sender) email(ctx context.Context, j *Job) outcome {
	if s.cfg.SMTP.Addr == "" {
		return permanent(ErrNoSMTP)
	}
	from, to, msg, err := composeEmail(j, s.now())
	if err != nil {
		return permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, j.timeout(s.cfg.Timeout))
	defer cancel()
	if err := s.smtpSend(ctx, from, to, msg); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return permanent(err)
		}
		return transient(err) // 4xx, or the connection
	}
	return outcome{ok: true}
}

// smtpSend runs one SMTP transaction.
func (s *Sender) smtpSend(ctx context.Context, from string, to []string, msg []byte) error {
	addr := s.cfg.SMTP.Addr
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connecting to smtp server %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancelling ctx (shutdown) interrupts a transaction in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("greeting from smtp server %s: %w", addr, err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Hello(s.cfg.SMTP.HelloName); err != nil {
		return fmt.Errorf("smtp hello: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	}
	if s.cfg.SMTP.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.SMTP.Username, s.cfg.SMTP.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("smtp mail from: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("smtp rcpt to %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	_ = c.Quit() // the message is accepted; a failed goodbye does not matter
	return nil
}

// composeEmail builds the message of j (CRLF line ends) and its envelope.
// An error wraps ErrInvalidJob.
func composeEmail(j *Job, date time.Time) (from string, to []string, msg []byte, err error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidJob, fmt.Sprintf(format, args...))
	}
	fromAddr, err := mail.ParseAddress(j.From)
	if err != nil {
		return "", nil, nil, invalid("from %q: %v", j.From, err)
	}
	toAddrs, err := mail.ParseAddressList(j.To)
	if err != nil {
		return "", nil, nil, invalid("to %q: %v", j.To, err)
	}
	var replyTo *mail.Address
	if j.ReplyTo != "" {
		if replyTo, err = mail.ParseAddress(j.ReplyTo); err != nil {
			return "", nil, nil, invalid("reply_to %q: %v", j.ReplyTo, err)
		}
	}
	if strings.ContainsAny(j.Subject, "\r\n") {
		return "", nil, nil, invalid("subject has a line break")
	}
	unsub, oneClick, err := listUnsubscribe(j.ListUnsubscribe)
	if err != nil {
		return "", nil, nil, err
	}

	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("From", fromAddr.String())
	tos := make([]string, len(toAddrs))
	to = make([]string, len(toAddrs))
	for i, a := range toAddrs {
		tos[i] = a.String()
		to[i] = a.Address
	}
	header("To", strings.Join(tos, ", "))
	if replyTo != nil {
		header("Reply-To", replyTo.String())
	}
	header("Subject", mime.QEncoding.Encode("utf-8", j.Subject))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", "<"+msgIDLocal(j.Key)+"@contrail>")
	header("MIME-Version", "1.0")
	if unsub != "" {
		header("List-Unsubscribe", "<"+unsub+">")
		if oneClick {
			header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
		}
	}
	header("X-Contrail-Key", headerSafe(j.Key))

	switch {
	case j.Text != "" && j.HTML != "":
		mw := multipart.NewWriter(&b)
		sum := sha256.Sum256([]byte(j.Key))
		if err := mw.SetBoundary("contrail-" + hex.EncodeToString(sum[:12])); err != nil {
			return "", nil, nil, fmt.Errorf("setting mime boundary: %w", err)
		}
		header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
		b.WriteString("\r\n")
		for _, p := range []struct{ ctype, body string }{{"text/plain", j.Text}, {"text/html", j.HTML}} {
			pw, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {p.ctype + "; charset=utf-8"},
				"Content-Transfer-Encoding": {"quoted-printable"},
			})
			if err != nil {
				return "", nil, nil, fmt.Errorf("writing mime part: %w", err)
			}
			if err := writeQP(pw, p.body); err != nil {
				return "", nil, nil, err
			}
		}
		if err := mw.Close(); err != nil {
			return "", nil, nil, fmt.Errorf("closing mime body: %w", err)
		}
	default:
		ctype, body := "text/plain", j.Text
		if j.HTML != "" {
			ctype, body = "text/html", j.HTML
		}
		header("Content-Type", ctype+"; charset=utf-8")
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, body); err != nil {
			return "", nil, nil, err
		}
		b.WriteString("\r\n")
	}
	return fromAddr.Address, to, b.Bytes(), nil
}

// writeQP writes body quoted-printable, with CRLF line ends.
func writeQP(w io.Writer, body string) error {
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(body)); err != nil {
		return fmt.Errorf("encoding body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return fmt.Errorf("encoding body: %w", err)
	}
	return nil
}

// listUnsubscribe checks a List-Unsubscribe target: an http(s) or mailto
// URL. oneClick is true for https (RFC 8058). A mailto target may name its
// address the RFC 5322 way ("mailto:News <news@example.com>?subject=x");
// only the address is kept.
func listUnsubscribe(v string) (target string, oneClick bool, err error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "<") && strings.HasSuffix(v, ">") {
		v = v[1 : len(v)-1]
	}
	if v == "" {
		return "", false, nil
	}
	invalid := fmt.Errorf("%w: list_unsubscribe %q is not an http, https or mailto url", ErrInvalidJob, v)
	if rest, ok := strings.CutPrefix(v, "mailto:"); ok {
		to, query, hasQuery := strings.Cut(rest, "?")
		a, err := mail.ParseAddress(to)
		if err != nil {
			return "", false, invalid
		}
		v = "mailto:" + a.Address
		if hasQuery {
			v += "?" + query
		}
	}
	u, err := url.Parse(v)
	if err != nil || strings.ContainsAny(v, "\r\n <>,") {
		return "", false, invalid
	}
	switch u.Scheme {
	case "https":
		return v, true, nil
	case "http", "mailto":
		return v, false, nil
	}
	return "", false, invalid
}

// msgIDLocal makes key usable as the left part of a Message-ID: characters
// outside RFC 5322 atext become '-'.
func msgIDLocal(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
			return r
		}
		return '-'
	}, key)
}

// headerSafe returns key as it is when it is printable ASCII without
// spaces (a hash always is), else as msgIDLocal makes it.
func headerSafe(key string) string {
	for i := range len(key) {
		if key[i] <= ' ' || key[i] > '~' {
			return msgIDLocal(key)
		}
	}
	return key
}
