package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and subject prefixes (DESIGN.md §5).
const (
	StreamEvents  = "EVENTS"
	StreamLeads   = "LEADS"
	StreamDead    = "DEAD"
	StreamParked  = "PARKED"
	EventsPrefix  = "ev."
	LeadsPrefix   = "ld."
	DeadPrefix    = "dead."
	ParkedPrefix  = "parked."
	metaPartition = "contrail_partitions"
)

// Options configures the streams. Zero values mean JetStream's defaults,
// except Partitions which must be set.
type Options struct {
	// Partitions is P, the number of EVENTS partitions.
	Partitions int
	// LeadPartitions is Q, the number of LEADS partitions; 0 means the
	// existing stream's, or P when there is none.
	LeadPartitions int
	// MaxAge and MaxBytes bound EVENTS retention (0: unlimited).
	MaxAge   time.Duration
	MaxBytes int64
	// DuplicateWindow is the Nats-Msg-Id deduplication window.
	DuplicateWindow time.Duration
	// ParkedMaxBytes bounds PARKED (0: unlimited). When it is full,
	// shards wait to park rather than drop events.
	ParkedMaxBytes int64
	// Replicas is the stream replication factor (1 embedded, 3 in a cluster).
	Replicas int
}

// Log is the event log. It is safe for concurrent use.
type Log struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	opts  Options
	subjs []string // subject of each partition, precomputed for the hot path
}

// ErrPartitions means the EVENTS stream exists with another partition count
// than configured; partitions are fixed when the stream is created.
var ErrPartitions = errors.New("partition count differs from the existing stream")

// Open connects the log to nc and creates the streams if they do not exist.
// It is idempotent: a second node, or a restart, finds the streams in place.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Log, error) {
	if opts.Partitions < 1 {
		return nil, fmt.Errorf("opening log: partitions must be at least 1, got %d", opts.Partitions)
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening jetstream: %w", err)
	}
	if opts.LeadPartitions == 0 {
		// Unspecified: the existing stream's count, else P.
		opts.LeadPartitions = opts.Partitions
		if s, err := js.Stream(ctx, StreamLeads); err == nil {
			if q, err := strconv.Atoi(s.CachedInfo().Config.Metadata[metaPartition]); err == nil && q > 0 {
				opts.LeadPartitions = q
			}
		}
	}
	l := &Log{nc: nc, js: js, opts: opts, subjs: make([]string, opts.Partitions)}
	for p := range l.subjs {
		l.subjs[p] = EventsSubject(p)
	}
	events := jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Contrail accepted events, one batch message per append",
		Subjects:    []string{EventsPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      opts.MaxAge,
		MaxBytes:    orUnlimited(opts.MaxBytes),
		MaxMsgSize:  8 << 20,
		Duplicates:  opts.DuplicateWindow,
		Replicas:    opts.Replicas,
		Metadata:    map[string]string{metaPartition: strconv.Itoa(opts.Partitions)},
	}
	if err := l.ensure(ctx, events, opts.Partitions); err != nil {
		return nil, err
	}
	leads := events
	leads.Name = StreamLeads
	leads.Description = "Contrail events of known leads and promotion back-fills, keyed by lead"
	leads.Subjects = []string{LeadsPrefix + "*"}
	leads.Metadata = map[string]string{metaPartition: strconv.Itoa(opts.LeadPartitions)}
	if err := l.ensure(ctx, leads, opts.LeadPartitions); err != nil {
		return nil, err
	}
	dead := jetstream.StreamConfig{
		Name:        StreamDead,
		Description: "Contrail events a processor rejected, reason in the Contrail-Reason header",
		Subjects:    []string{DeadPrefix + "*"},
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  opts.DuplicateWindow,
		Replicas:    opts.Replicas,
	}
	if err := l.ensure(ctx, dead, 0); err != nil {
		return nil, err
	}
	// Parked events are kept until they are replayed (then purged): no
	// age limit, and a full stream refuses new messages rather than drop
	// old ones, so a shard that cannot park waits instead of losing them.
	parked := jetstream.StreamConfig{
		Name:        StreamParked,
		Description: "Contrail events of paused or diverted tenants, waiting to be replayed in order",
		Subjects:    []string{ParkedPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    orUnlimited(opts.ParkedMaxBytes),
		MaxMsgSize:  8 << 20,
		Duplicates:  opts.DuplicateWindow,
		Replicas:    opts.Replicas,
	}
	if err := l.ensure(ctx, parked, 0); err != nil {
		return nil, err
	}
	return l, nil
}

// ParkedSubject is the PARKED subject of a tenant's events set aside by
// the shard of stream's partition p: "parked.<tenant>.ev.<p>".
func ParkedSubject(tenant, stream string, p int) string {
	return ParkedPrefix + tenant + "." + PrefixOf(stream) + strconv.Itoa(p)
}

// PurgeSubject removes the messages of subject in stream stored before
// sequence before.
func (l *Log) PurgeSubject(ctx context.Context, stream, subject string, before uint64) error {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("looking up stream %s: %w", stream, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(before)); err != nil {
		return fmt.Errorf("purging %s below %d: %w", subject, before, err)
	}
	return nil
}

func orUnlimited(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ensure creates cfg's stream or checks the existing one. For a partitioned
// stream (partitions > 0), the partition count must match; retention
// settings are updated in place.
func (l *Log) ensure(ctx context.Context, cfg jetstream.StreamConfig, partitions int) error {
	s, err := l.js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if _, err := l.js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("creating stream %s: %w", cfg.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("looking up stream %s: %w", cfg.Name, err)
	}
	if partitions > 0 {
		have := s.CachedInfo().Config.Metadata[metaPartition]
		if have != cfg.Metadata[metaPartition] {
			return fmt.Errorf("stream %s has %s partitions, configured %d: %w", cfg.Name, have, partitions, ErrPartitions)
		}
	}
	old := s.CachedInfo().Config
	if old.MaxAge != cfg.MaxAge || old.MaxBytes != cfg.MaxBytes || old.Duplicates != cfg.Duplicates && cfg.Duplicates != 0 {
		if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("updating stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// EventsSubject returns the subject of EVENTS partition p.
func EventsSubject(p int) string { return EventsPrefix + strconv.Itoa(p) }

// LeadsSubject returns the subject of LEADS partition q.
func LeadsSubject(q int) string { return LeadsPrefix + strconv.Itoa(q) }

// LeadPartitions returns Q, the number of LEADS partitions.
func (l *Log) LeadPartitions() int { return l.opts.LeadPartitions }

// PartitionOf returns the partition of an EVENTS subject, or -1.
func PartitionOf(subject string) int { return partitionOf(subject, EventsPrefix) }

func partitionOf(subject, prefix string) int {
	s, ok := strings.CutPrefix(subject, prefix)
	if !ok {
		return -1
	}
	p, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return p
}

// Partitions returns P.
func (l *Log) Partitions() int { return l.opts.Partitions }

// Append stores data as one message of partition p and returns its stream
// sequence once JetStream acknowledged it. A failed attempt is retried with
// the same msgID until ctx ends, so the message is stored at most once even
// when an acknowledgement was lost.
func (l *Log) Append(ctx context.Context, p int, msgID string, data []byte) (uint64, error) {
	if p < 0 || p >= len(l.subjs) {
		return 0, fmt.Errorf("appending to partition %d of %d: out of range", p, len(l.subjs))
	}
	return l.publish(ctx, &nats.Msg{Subject: l.subjs[p], Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}, StreamEvents)
}

// Publish stores data on subject (in whichever stream holds it) with msgID
// and the given headers, retrying like Append. Shards use it for their
// outputs (DEAD and, later, LEADS).
func (l *Log) Publish(ctx context.Context, subject, msgID string, data []byte, headers map[string]string) (uint64, error) {
	h := nats.Header{jetstream.MsgIDHeader: []string{msgID}}
	for k, v := range headers {
		h.Set(k, v)
	}
	return l.publish(ctx, &nats.Msg{Subject: subject, Data: data, Header: h}, "")
}

func (l *Log) publish(ctx context.Context, msg *nats.Msg, stream string) (uint64, error) {
	var opts []jetstream.PublishOpt
	if stream != "" {
		opts = append(opts, jetstream.WithExpectStream(stream))
	}
	backoff := 5 * time.Millisecond
	for {
		ack, err := l.js.PublishMsg(ctx, msg, opts...)
		if err == nil {
			return ack.Sequence, nil
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("publishing to %s: %w (last error: %w)", msg.Subject, ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("publishing to %s: %w (last error: %w)", msg.Subject, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// LastSeqOf returns the stream sequence of the last message on EVENTS
// partition p (0 when it has none).
func (l *Log) LastSeqOf(ctx context.Context, p int) (uint64, error) {
	return l.LastSeqOfStream(ctx, StreamEvents, p)
}

// LastSeqOfStream returns the stream sequence of the last message on
// partition p of stream (EVENTS or LEADS; 0 when it has none).
func (l *Log) LastSeqOfStream(ctx context.Context, stream string, p int) (uint64, error) {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("looking up stream %s: %w", stream, err)
	}
	return lastSeqOfSubject(ctx, s, PrefixOf(stream)+strconv.Itoa(p))
}

// lastSeqOfSubject returns the sequence of the last message of subject in
// s (0 when it has none).
func lastSeqOfSubject(ctx context.Context, s jetstream.Stream, subject string) (uint64, error) {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading last message of %s: %w", subject, err)
	}
	return m.Sequence, nil
}

// PrefixOf returns the subject prefix of a partitioned stream's
// partitions ("ev." for EVENTS, "ld." for LEADS), "" for another stream.
func PrefixOf(stream string) string {
	switch stream {
	case StreamEvents:
		return EventsPrefix
	case StreamLeads:
		return LeadsPrefix
	}
	return ""
}

// Ready checks that the log answers: the connection is up and EVENTS exists.
func (l *Log) Ready(ctx context.Context) error {
	if !l.nc.IsConnected() {
		return errors.New("nats connection is " + l.nc.Status().String())
	}
	if _, err := l.js.Stream(ctx, StreamEvents); err != nil {
		return fmt.Errorf("looking up stream %s: %w", StreamEvents, err)
	}
	return nil
}

// Message is one stored log message.
type Message struct {
	Subject   string
	Partition int    // -1 when the subject is not partitioned
	Seq       uint64 // stream sequence
	MsgID     string // Nats-Msg-Id
	Time      time.Time
	Data      []byte
	Headers   nats.Header
	// Pending is how many messages of the read's subjects were stored after
	// this one when the server sent it: the reader's lag, short by at most
	// the few messages a read fetches ahead.
	Pending uint64
}

// readAhead is how many messages a read fetches ahead of its callback.
const readAhead = 32

// Start says where a read begins.
type Start struct {
	// Seq, when non-zero, starts at this stream sequence.
	Seq uint64
	// New starts with messages stored after the read began.
	New bool
	// Time, when not zero, starts with the first message stored at or
	// after it.
	Time time.Time
}

// Read delivers the messages of one partition (or of all when partition is
// -1) to fn in stream order, from start, until ctx ends or fn fails. It uses
// an ordered, ephemeral consumer, which recreates itself on gaps.
func (l *Log) Read(ctx context.Context, partition int, start Start, fn func(Message) error) error {
	return l.ReadStream(ctx, StreamEvents, EventsPrefix, partition, start, fn)
}

// ReadStream delivers the messages of stream to fn in stream order: those
// of subject prefix+partition, or all when partition is -1. See Read.
func (l *Log) ReadStream(ctx context.Context, stream, prefix string, partition int, start Start, fn func(Message) error) error {
	subject := ""
	if partition >= 0 {
		subject = prefix + strconv.Itoa(partition)
	}
	return l.read(ctx, stream, subject, prefix, start, fn)
}

// ReadSubject delivers the messages of one subject of stream to fn in
// stream order, like ReadStream.
func (l *Log) ReadSubject(ctx context.Context, stream, subject string, start Start, fn func(Message) error) error {
	return l.read(ctx, stream, subject, "", start, fn)
}

func (l *Log) read(ctx context.Context, stream, subject, prefix string, start Start, fn func(Message) error) error {
	cfg := jetstream.OrderedConsumerConfig{InactiveThreshold: 30 * time.Second}
	if subject != "" {
		cfg.FilterSubjects = []string{subject}
	}
	switch {
	case start.New:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case start.Seq > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start.Seq
	case !start.Time.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &start.Time
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := l.js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("creating ordered consumer on %s: %w", stream, err)
	}
	// A small prefetch: a message can hold a megabyte of events, and what
	// sits in the client's buffer is not counted in Pending, so a large
	// buffer would both cost memory and hide a reader's lag.
	it, err := cons.Messages(jetstream.PullMaxMessages(readAhead))
	if err != nil {
		return fmt.Errorf("reading %s: %w", stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading %s: %w", stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("reading metadata: %w", err)
		}
		msg := Message{
			Subject:   m.Subject(),
			Partition: partitionOf(m.Subject(), prefix),
			Headers:   m.Headers(),
			Seq:       md.Sequence.Stream,
			MsgID:     m.Headers().Get(jetstream.MsgIDHeader),
			Time:      md.Timestamp,
			Data:      m.Data(),
			Pending:   md.NumPending,
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// LastSeq returns the last stream sequence of EVENTS (0 when empty).
func (l *Log) LastSeq(ctx context.Context) (uint64, error) { return l.StreamLastSeq(ctx, StreamEvents) }

// StreamLastSeq returns the last sequence of stream (0 when empty).
func (l *Log) StreamLastSeq(ctx context.Context, stream string) (uint64, error) {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("looking up stream %s: %w", stream, err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

// ReadAll delivers every message stored up to now, in stream order, then
// returns. Tests and tools use it to check the whole log.
func (l *Log) ReadAll(ctx context.Context, fn func(Message) error) error {
	last, err := l.LastSeq(ctx)
	if err != nil || last == 0 {
		return err
	}
	errDone := errors.New("done")
	err = l.Read(ctx, -1, Start{}, func(m Message) error {
		if err := fn(m); err != nil {
			return err
		}
		if m.Seq >= last {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}
