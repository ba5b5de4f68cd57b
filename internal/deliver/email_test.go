package deliver

import (
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/deliver/delivertest"
	"github.com/contrailhq/contrail/internal/shard"
)

func emailJob(key string) Job {
	return Job{
		Kind: KindEmail, Tenant: "t1", Key: key, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		From: "Café Team <team@example.com>", To: "Ann <ann@example.org>, bob@example.net",
		ReplyTo: "help@example.com", Subject: "Bienvenue au café ☕",
		Text: "Hello Ann,\nwelcome.\n", HTML: "<p>Hello <b>Ann</b>, welcome = bienvenue</p>",
		ListUnsubscribe: "https://example.com/unsub?l=42",
	}
}

func emailSender(t *testing.T, sink *delivertest.SMTPSink) *Sender {
	t.Helper()
	cfg := testConfig()
	cfg.SMTP = SMTP{Addr: sink.Addr(), HelloName: "contrail.test"}
	return startSender(t, openStore(t), cfg, Deps{Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC) }})
}

func TestEmailMultipart(t *testing.T) {
	t.Parallel()
	sink := delivertest.NewSMTPSink(t)
	s := emailSender(t, sink)
	j := emailJob("mail-1")
	require.Empty(t, s.Deliver(t.Context(), []shard.External{{Key: j.Key, Payload: payload(t, j)}}))
	res := waitResult(t, s, "mail-1")
	require.Equal(t, StatusDelivered, res.Status)
	require.Equal(t, 1, res.Attempts)

	msgs := sink.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, "team@example.com", m.From)
	require.Equal(t, []string{"ann@example.org", "bob@example.net"}, m.To)
	h := m.Header
	from, err := h.AddressList("From")
	require.NoError(t, err)
	require.Equal(t, []*mail.Address{{Name: "Café Team", Address: "team@example.com"}}, from)
	to, err := h.AddressList("To")
	require.NoError(t, err)
	require.Len(t, to, 2)
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "Bienvenue au café ☕", subject)
	require.NotEqual(t, subject, h.Get("Subject"), "a non-ASCII subject is encoded")
	date, err := h.Date()
	require.NoError(t, err)
	require.True(t, date.Equal(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)))
	require.Equal(t, "<mail-1@contrail>", h.Get("Message-ID"))
	require.Equal(t, "mail-1", h.Get("X-Contrail-Key"))
	require.Equal(t, "1.0", h.Get("MIME-Version"))
	require.Equal(t, "<help@example.com>", h.Get("Reply-To"))
	require.Equal(t, "<https://example.com/unsub?l=42>", h.Get("List-Unsubscribe"))
	require.Equal(t, "List-Unsubscribe=One-Click", h.Get("List-Unsubscribe-Post"))

	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	want := []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", "Hello Ann,\r\nwelcome.\r\n"},
		{"text/html; charset=utf-8", "<p>Hello <b>Ann</b>, welcome = bienvenue</p>"},
	}
	for _, w := range want {
		p, err := mr.NextPart() // decodes quoted-printable
		require.NoError(t, err)
		require.Equal(t, w.ctype, p.Header.Get("Content-Type"))
		body, err := io.ReadAll(p)
		require.NoError(t, err)
		require.Equal(t, strings.ReplaceAll(w.body, "\r\n", "\n"), strings.ReplaceAll(string(body), "\r\n", "\n"))
	}
	_, err = mr.NextPart()
	require.ErrorIs(t, err, io.EOF)
}

func TestEmailTextOnlyAndMailtoUnsubscribe(t *testing.T) {
	t.Parallel()
	j := emailJob("mail-2")
	j.HTML = ""
	j.ListUnsubscribe = "mailto:unsub@example.com?subject=stop"
	j.Subject = "Plain"
	_, to, msg, err := composeEmail(&j, time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	require.NoError(t, err)
	require.Equal(t, []string{"ann@example.org", "bob@example.net"}, to)
	m, err := mail.ReadMessage(strings.NewReader(string(msg)))
	require.NoError(t, err)
	require.Equal(t, "Plain", m.Header.Get("Subject"))
	require.Equal(t, "text/plain; charset=utf-8", m.Header.Get("Content-Type"))
	require.Equal(t, "<mailto:unsub@example.com?subject=stop>", m.Header.Get("List-Unsubscribe"))
	require.Empty(t, m.Header.Get("List-Unsubscribe-Post"))
	require.NotContains(t, strings.ReplaceAll(string(msg), "\r\n", ""), "\n", "every line ends in CRLF")
}

func TestComposeEmailRefuses(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*Job){
		"bad from":           func(j *Job) { j.From = "not an address" },
		"no to":              func(j *Job) { j.To = "" },
		"subject injection":  func(j *Job) { j.Subject = "hi\r\nBcc: victim@example.com" },
		"unsubscribe scheme": func(j *Job) { j.ListUnsubscribe = "javascript:alert(1)" },
		"unsubscribe inject": func(j *Job) { j.ListUnsubscribe = "https://x.example/\r\nBcc: v@example.com" },
		"bad reply-to":       func(j *Job) { j.ReplyTo = "@@" },
	} {
		j := emailJob("k")
		mutate(&j)
		_, _, _, err := composeEmail(&j, time.Now())
		require.ErrorIs(t, err, ErrInvalidJob, name)
	}
}

func TestEmailTransientThenDelivered(t *testing.T) {
	t.Parallel()
	sink := delivertest.NewSMTPSink(t)
	sink.FailNext(2, 451)
	s := emailSender(t, sink)
	j := emailJob("mail-3")
	s.Deliver(t.Context(), []shard.External{{Key: j.Key, Payload: payload(t, j)}})
	res := waitResult(t, s, "mail-3")
	require.Equal(t, StatusDelivered, res.Status)
	require.Equal(t, 3, res.Attempts)
	msgs := sink.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "<mail-3@contrail>", msgs[0].Header.Get("Message-ID"))
}

func TestEmailPermanentFailure(t *testing.T) {
	t.Parallel()
	sink := delivertest.NewSMTPSink(t)
	sink.FailNext(1, 550)
	s := emailSender(t, sink)
	j := emailJob("mail-4")
	s.Deliver(t.Context(), []shard.External{{Key: j.Key, Payload: payload(t, j)}})
	res := waitResult(t, s, "mail-4")
	require.Equal(t, StatusFailed, res.Status)
	require.Equal(t, 1, res.Attempts)
	require.Contains(t, res.Error, "550")
	require.Empty(t, sink.Messages())
}

func TestEmailWithoutSMTP(t *testing.T) {
	t.Parallel()
	s := startSender(t, openStore(t), testConfig(), Deps{})
	j := emailJob("mail-5")
	s.Deliver(t.Context(), []shard.External{{Key: j.Key, Payload: payload(t, j)}})
	res := waitResult(t, s, "mail-5")
	require.Equal(t, StatusFailed, res.Status)
	require.Equal(t, ErrNoSMTP.Error(), res.Error)
	require.Equal(t, KindEmail, res.Kind)
}

func TestListUnsubscribe(t *testing.T) {
	t.Parallel()
	f := func(in, want string, wantOneClick bool) {
		t.Helper()
		got, oneClick, err := listUnsubscribe(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
		require.Equal(t, wantOneClick, oneClick, in)
	}
	f("", "", false)
	f("https://example.com/u?l=1", "https://example.com/u?l=1", true)
	f("<https://example.com/u>", "https://example.com/u", true)
	f("http://example.com/u", "http://example.com/u", false)
	f("mailto:news@example.com", "mailto:news@example.com", false)
	f("mailto:News <news@example.com>?subject=unsubscribe", "mailto:news@example.com?subject=unsubscribe", false)
	f("mailto:Café <news@example.com>", "mailto:news@example.com", false)
	for _, bad := range []string{"javascript:alert(1)", "mailto:", "mailto:not an address", "https://x.example/a b", "ftp://x.example/"} {
		_, _, err := listUnsubscribe(bad)
		require.ErrorIs(t, err, ErrInvalidJob, bad)
	}
}
