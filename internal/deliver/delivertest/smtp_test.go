package delivertest

import (
	"net/smtp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSMTPSink(t *testing.T) {
	t.Parallel()
	sink := NewSMTPSink(t)
	c, err := smtp.Dial(sink.Addr())
	require.NoError(t, err)
	require.NoError(t, c.Hello("test"))
	require.NoError(t, c.Noop())
	require.NoError(t, c.Mail("a@example.com"))
	require.NoError(t, c.Reset())
	require.Error(t, c.Rcpt("b@example.com"), "RCPT after RSET needs MAIL")
	require.NoError(t, c.Mail("a@example.com"))
	require.NoError(t, c.Rcpt("b@example.com"))
	w, err := c.Data()
	require.NoError(t, err)
	_, err = w.Write([]byte("Subject: hi\r\n\r\n.leading dot\r\n"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, c.Quit())

	sink.FailNext(1, 452)
	err = smtp.SendMail(sink.Addr(), nil, "a@example.com", []string{"c@example.com"}, []byte("Subject: no\r\n\r\nx\r\n"))
	require.ErrorContains(t, err, "452")

	msgs := sink.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, "a@example.com", msgs[0].From)
	require.Equal(t, []string{"b@example.com"}, msgs[0].To)
	require.Equal(t, "hi", msgs[0].Header.Get("Subject"))
	require.Equal(t, "Subject: hi\n\n.leading dot\n", string(msgs[0].Raw))
	require.NoError(t, sink.Close())
	require.NoError(t, sink.Close())
}
