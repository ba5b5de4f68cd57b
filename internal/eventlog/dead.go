package eventlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/contrailhq/contrail/internal/event"
)

// DeadUnknownTenant is the tenant part of the DEAD subject of a log message
// that could not be read as a whole: its events, and so their tenants, are
// unknown.
const DeadUnknownTenant = "unknown"

// Headers that shards put on DEAD messages. They are the values of
// shard.HeaderReason and its siblings; the shard package imports this one,
// so it cannot be the other way round.
const (
	deadHeaderReason    = "Contrail-Reason"
	deadHeaderStream    = "Contrail-Stream"
	deadHeaderPartition = "Contrail-Partition"
	deadHeaderSeq       = "Contrail-Seq"
)

var (
	// ErrNotReplayable means a DEAD message cannot go back to EVENTS: it
	// holds a whole unreadable log message (subject dead.unknown) or data
	// that does not decode, or it was rejected downstream of EVENTS.
	ErrNotReplayable = errors.New("dead message cannot be replayed")
	// ErrDeadNotFound means DEAD holds no message with that sequence: it
	// never existed, was replayed already, or aged out.
	ErrDeadNotFound = errors.New("no such dead message")
)

// DeadMessage is one message of the DEAD stream: one event a processor
// rejected, or one log message that could not be read at all.
type DeadMessage struct {
	// Seq is the message's sequence in DEAD.
	Seq     uint64
	Subject string
	// Tenant is the tenant of the subject, DeadUnknownTenant for an
	// unreadable log message.
	Tenant string
	// Time is when the message was stored in DEAD.
	Time time.Time
	// Reason is the processor's error.
	Reason string
	// Stream, Partition and SourceSeq say where the event was read when it
	// was rejected; Partition is -1 and SourceSeq 0 when the message does
	// not say.
	Stream    string
	Partition int
	SourceSeq uint64
	// Data is a log message (see event.DecodeBatch): one event, or for
	// dead.unknown the unreadable message as it was.
	Data []byte
}

func deadMessage(seq uint64, subject string, t time.Time, h nats.Header, data []byte) DeadMessage {
	dm := DeadMessage{
		Seq: seq, Subject: subject, Tenant: strings.TrimPrefix(subject, DeadPrefix), Time: t,
		Reason: h.Get(deadHeaderReason), Stream: h.Get(deadHeaderStream), Partition: -1, Data: data,
	}
	if p, err := strconv.Atoi(h.Get(deadHeaderPartition)); err == nil {
		dm.Partition = p
	}
	if s, err := strconv.ParseUint(h.Get(deadHeaderSeq), 10, 64); err == nil {
		dm.SourceSeq = s
	}
	return dm
}

// deadIdle is how long ListDead waits for the next message before it checks
// whether the end it aimed at was deleted (replayed) meanwhile.
const deadIdle = time.Second

// ListDead returns up to limit messages of DEAD (all when limit < 1) after
// stream sequence after, in order, for one tenant or for all when tenant is
// "". It reads up to the end of DEAD as it was when called and does not wait
// for new messages.
func (l *Log) ListDead(ctx context.Context, tenant string, after uint64, limit int) ([]DeadMessage, error) {
	subject := ""
	if tenant != "" {
		if strings.ContainsAny(tenant, ".*> \t\r\n") {
			return nil, fmt.Errorf("listing dead messages: %q is not a tenant id", tenant)
		}
		subject = DeadPrefix + tenant
	}
	s, err := l.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, fmt.Errorf("looking up stream %s: %w", StreamDead, err)
	}
	last, err := lastDead(ctx, s, subject)
	if err != nil || last <= after {
		return nil, err
	}
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		InactiveThreshold: 30 * time.Second,
	}
	if subject != "" {
		cfg.FilterSubjects = []string{subject}
	}
	cons, err := l.js.OrderedConsumer(ctx, StreamDead, cfg)
	if err != nil {
		return nil, fmt.Errorf("creating ordered consumer on %s: %w", StreamDead, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", StreamDead, err)
	}
	defer it.Stop()
	var out []DeadMessage
	cursor := after
	for limit < 1 || len(out) < limit {
		m, err := nextWithin(ctx, it, deadIdle)
		if errors.Is(err, errIdle) {
			// The messages up to last may have been replayed (deleted)
			// since we looked: aim at the end as it is now.
			if last, err = lastDead(ctx, s, subject); err != nil {
				return nil, err
			}
			if last <= cursor {
				break
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", StreamDead, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("reading metadata: %w", err)
		}
		cursor = md.Sequence.Stream
		out = append(out, deadMessage(cursor, m.Subject(), md.Timestamp, m.Headers(), m.Data()))
		if cursor >= last || md.NumPending == 0 {
			break
		}
	}
	return out, nil
}

// errIdle means no message came within the wait of nextWithin.
var errIdle = errors.New("no message within the wait")

// nextWithin returns the iterator's next message, or errIdle when none
// comes within wait while ctx goes on.
func nextWithin(ctx context.Context, it jetstream.MessagesContext, wait time.Duration) (jetstream.Msg, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := it.Next(jetstream.NextContext(wctx))
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return nil, errIdle
	}
	return m, err
}

// lastDead returns the sequence of the last message of DEAD on subject, or
// of all DEAD when subject is "" (0 when there is none).
func lastDead(ctx context.Context, s jetstream.Stream, subject string) (uint64, error) {
	if subject == "" {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("looking up stream %s: %w", StreamDead, err)
		}
		return info.State.LastSeq, nil
	}
	return lastSeqOfSubject(ctx, s, subject)
}

// LastDeadSeq returns the last stream sequence of DEAD (0 when empty). A
// caller that replays "everything" stops there, so that events rejected
// again by their replay are not replayed in a loop.
func (l *Log) LastDeadSeq(ctx context.Context) (uint64, error) {
	s, err := l.js.Stream(ctx, StreamDead)
	if err != nil {
		return 0, fmt.Errorf("looking up stream %s: %w", StreamDead, err)
	}
	return lastDead(ctx, s, "")
}

// ReplayDead appends the events of DEAD message seq to EVENTS, each on its
// visitor's partition, then deletes the message from DEAD, and returns the
// number of events appended. It fails with ErrDeadNotFound when there is no
// such message and with ErrNotReplayable when its data cannot be replayed;
// such a message is kept.
//
// Replay is safe to retry. The events of one partition go in one message
// with the Nats-Msg-Id replay.<seq>.<partition>, so a retry within the
// duplicate window is stored once; after it, the visitor shard still drops
// the second copy, because it deduplicates by (tenant, messageId) over its
// dedup window (at least 24 h), and the events keep their messageId and
// receivedAt. An event that went to DEAD left no trace in the shard (its
// writes were discarded), so its replay is processed as new.
func (l *Log) ReplayDead(ctx context.Context, seq uint64) (int, error) {
	s, err := l.js.Stream(ctx, StreamDead)
	if err != nil {
		return 0, fmt.Errorf("looking up stream %s: %w", StreamDead, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("dead message %d: %w", seq, ErrDeadNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("reading dead message %d: %w", seq, err)
	}
	dm := deadMessage(raw.Sequence, raw.Subject, raw.Time, raw.Header, raw.Data)
	if dm.Tenant == DeadUnknownTenant {
		return 0, fmt.Errorf("dead message %d holds a log message that could not be read as a whole (%s): %w", seq, dm.Reason, ErrNotReplayable)
	}
	if dm.Stream != "" && dm.Stream != StreamEvents {
		// Its events were accepted from EVENTS already; the visitor shard
		// would drop them as duplicates.
		return 0, fmt.Errorf("dead message %d was rejected on %s, and only rejects of %s can be replayed: %w", seq, dm.Stream, StreamEvents, ErrNotReplayable)
	}
	events, err := event.DecodeBatch(dm.Data)
	if err != nil {
		return 0, fmt.Errorf("dead message %d: %w: %w", seq, ErrNotReplayable, err)
	}
	if len(events) == 0 {
		return 0, fmt.Errorf("dead message %d holds no event: %w", seq, ErrNotReplayable)
	}
	byPartition := map[int][]event.Event{}
	for _, e := range events {
		p := event.Partition(e.Tenant, e.VisitorKey(), l.Partitions())
		byPartition[p] = append(byPartition[p], e)
	}
	for _, p := range slices.Sorted(maps.Keys(byPartition)) {
		id := "replay." + strconv.FormatUint(seq, 10) + "." + strconv.Itoa(p)
		if _, err := l.Append(ctx, p, id, event.EncodeBatch(byPartition[p])); err != nil {
			return 0, fmt.Errorf("replaying dead message %d to partition %d: %w", seq, p, err)
		}
	}
	if err := s.DeleteMsg(ctx, seq); err != nil {
		// A concurrent replay of the same message may have deleted it.
		if _, gerr := s.GetMsg(ctx, seq); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("deleting replayed dead message %d: %w", seq, err)
		}
	}
	return len(events), nil
}
