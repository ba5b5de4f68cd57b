package shard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/event"
	"github.com/contrailhq/contrail/internal/shard"
	"github.com/contrailhq/contrail/internal/store"
)

// router emits each event to the subject in its name; "fail" fails after emitting.
type router struct{}

func (router) Process(_ context.Context, tx *shard.Tx, e *event.Event) error {
	tx.EmitEvent("out."+e.Event, e)
	if e.Name == "fail" {
		return errors.New("failed")
	}
	if e.Name == "raw" {
		tx.Emit(shard.Output{Subject: "raw", Data: []byte(e.MessageID)})
	}
	return nil
}

func TestEmitEventGroupsPerSubject(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer st.Close()
	at := time.Unix(1700000000, 0).UTC()
	ev := func(mid, subject, name string) event.Event {
		return event.Event{Tenant: "t", Type: event.TypeTrack, MessageID: mid, Event: subject, Name: name, AnonymousID: "a", ReceivedAt: at, Timestamp: at}
	}
	in := []event.Event{ev("1", "b", "raw"), ev("2", "a", ""), ev("3", "b", "fail"), ev("4", "b", ""), ev("5", "a", "")}
	outs, errs, err := shard.ApplyLocal(context.Background(), st, "S", 0, 7, router{}, in)
	require.NoError(t, err)
	require.Error(t, errs[2])
	// One message per subject in order of first emission, then raw outputs;
	// the failed event's emission is dropped.
	require.Len(t, outs, 3)
	require.Equal(t, []string{"out.b", "out.a", "raw"}, []string{outs[0].Subject, outs[1].Subject, outs[2].Subject})
	mids := func(data []byte) []string {
		evs, err := event.DecodeBatch(data)
		require.NoError(t, err)
		var ids []string
		for _, e := range evs {
			ids = append(ids, e.MessageID)
		}
		return ids
	}
	require.Equal(t, []string{"1", "4"}, mids(outs[0].Data))
	require.Equal(t, []string{"2", "5"}, mids(outs[1].Data))
	require.Equal(t, "1", string(outs[2].Data))
}
