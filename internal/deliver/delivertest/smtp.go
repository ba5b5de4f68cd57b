// Package delivertest helps tests of code that sends email through package
// deliver: an in-process SMTP server that keeps what it receives. It is
// meant for tests only.
package delivertest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// SMTPSink is a minimal SMTP server on 127.0.0.1 that accepts every message
// (EHLO, HELO, MAIL, RCPT, DATA, RSET, NOOP and QUIT; no TLS, no AUTH) and
// keeps it. It is safe for concurrent use.
type SMTPSink struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	msgs   []received
	fail   []int // codes for the next messages' end of DATA
	conns  map[net.Conn]struct{}
	closed bool
}

// Message is a message the sink received.
type Message struct {
	// From and To are the envelope (MAIL FROM and RCPT TO).
	From string
	To   []string
	// Raw is the message as received, dot-stuffing removed, with "\n" line
	// ends.
	Raw []byte
	// Message is Raw parsed; each call of Messages gives a fresh Body.
	*mail.Message
}

type received struct {
	from string
	to   []string
	raw  []byte
}

// NewSMTPSink starts a sink; it is closed when the test ends.
func NewSMTPSink(tb testing.TB) *SMTPSink {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listening for the smtp sink: %v", err)
	}
	s := &SMTPSink{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Addr is the sink's host:port.
func (s *SMTPSink) Addr() string { return s.ln.Addr().String() }

// Messages returns the messages received so far, in order.
func (s *SMTPSink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.msgs))
	for _, r := range s.msgs {
		m := Message{From: r.from, To: r.to, Raw: r.raw}
		if parsed, err := mail.ReadMessage(bytes.NewReader(r.raw)); err == nil {
			m.Message = parsed
		}
		out = append(out, m)
	}
	return out
}

// FailNext makes the sink refuse the next n messages at the end of DATA
// with code: a 4xx code is a transient failure, a 5xx one permanent.
func (s *SMTPSink) FailNext(n, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, code)
	}
}

// Close stops the sink and waits for its connections to end.
func (s *SMTPSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("closing the smtp sink: %w", err)
	}
	return nil
}

func (s *SMTPSink) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			_ = s.serve(textproto.NewConn(c))
		})
	}
}

// serve runs one SMTP session.
func (s *SMTPSink) serve(tp *textproto.Conn) error {
	if err := tp.PrintfLine("220 delivertest ESMTP ready"); err != nil {
		return err
	}
	var from string
	var to []string
	mailStarted := false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return err
		}
		verb, arg, _ := strings.Cut(line, " ")
		var reply string
		switch strings.ToUpper(verb) {
		case "EHLO":
			if err := tp.PrintfLine("250-delivertest"); err != nil {
				return err
			}
			reply = "250 8BITMIME"
		case "HELO":
			reply = "250 delivertest"
		case "MAIL":
			addr, ok := pathArg(arg, "FROM:")
			if !ok {
				reply = "501 syntax: MAIL FROM:<address>"
				break
			}
			from, to, mailStarted = addr, nil, true
			reply = "250 OK"
		case "RCPT":
			addr, ok := pathArg(arg, "TO:")
			switch {
			case !mailStarted:
				reply = "503 MAIL first"
			case !ok:
				reply = "501 syntax: RCPT TO:<address>"
			default:
				to = append(to, addr)
				reply = "250 OK"
			}
		case "DATA":
			if len(to) == 0 {
				reply = "503 RCPT first"
				break
			}
			if err := tp.PrintfLine("354 end data with <CR><LF>.<CR><LF>"); err != nil {
				return err
			}
			raw, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return err
			}
			reply = s.take(received{from: from, to: to, raw: raw})
			from, to, mailStarted = "", nil, false
		case "RSET":
			from, to, mailStarted = "", nil, false
			reply = "250 OK"
		case "NOOP":
			reply = "250 OK"
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return nil
		default:
			reply = "502 command not implemented"
		}
		if err := tp.PrintfLine("%s", reply); err != nil {
			return err
		}
	}
}

// take keeps a message, unless a failure was asked for; it returns the
// reply to the end of DATA.
func (s *SMTPSink) take(r received) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fail) > 0 {
		code := s.fail[0]
		s.fail = s.fail[1:]
		return fmt.Sprintf("%d refused by delivertest", code)
	}
	s.msgs = append(s.msgs, r)
	return "250 OK: queued"
}

// pathArg reads "FROM:<addr> [params]" (prefix "FROM:").
func pathArg(arg, prefix string) (string, bool) {
	arg = strings.TrimSpace(arg)
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	addr, _, ok := strings.Cut(rest[1:], ">")
	return addr, ok
}
