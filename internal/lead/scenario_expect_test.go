package lead_test

import (
	"context"
	"slices"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/lead"
)

// check compares the pipeline's state with a scenario's expectations.
func (r *runner) check(ex expectations) {
	t := r.t
	require.Len(t, r.pl.rejected, ex.Rejected, "inputs refused: %v", r.pl.rejected)
	for _, le := range ex.Leads {
		r.checkLead(le)
	}
	for anon, ve := range ex.Visitors {
		r.checkVisitor(anon, ve)
	}
	for list, refs := range ex.Lists {
		members, next, err := r.pl.reader.ListMembers(context.Background(), testTenant, list, 1000, "")
		require.NoError(t, err, "list %s", list)
		require.Empty(t, next, "list %s", list)
		got := []string{}
		for _, m := range members {
			got = append(got, m.ID)
		}
		want := []string{}
		for _, ref := range refs {
			want = append(want, r.leadID(ref))
		}
		slices.Sort(want)
		require.Equal(t, want, got, "members of list %s (%v)", list, refs)
	}
}

func (r *runner) checkLead(le leadExpect) {
	t := r.t
	ctx := context.Background()
	l, err := r.lookup(le.Ref)
	if le.Exists != nil && !*le.Exists {
		require.ErrorIs(t, err, lead.ErrNotFound, "lead %s must not be found", le.Ref)
		id := r.leadID(le.Ref)
		_, err = r.pl.reader.Get(ctx, testTenant, id)
		require.ErrorIs(t, err, lead.ErrNotFound, "lead %s (%s) by id", le.Ref, id)
		_, _, err = r.pl.reader.Activities(ctx, testTenant, id, lead.ActivityQuery{Limit: 10})
		require.ErrorIs(t, err, lead.ErrNotFound, "timeline of lead %s", le.Ref)
		require.Empty(t, r.pl.keys(r.pl.activityPrefix(id)), "activities stored for lead %s", le.Ref)
		return
	}
	require.NoError(t, err, "lead %s", le.Ref)
	if le.Is != "" {
		require.Equal(t, r.leadID(le.Is), l.ID, "lead %s is lead %s", le.Ref, le.Is)
	}
	if le.UserID != nil {
		require.Equal(t, *le.UserID, l.UserID, "lead %s user_id", le.Ref)
	}
	if le.Email != nil {
		require.Equal(t, *le.Email, l.Email, "lead %s email", le.Ref)
	}
	if le.Score != nil {
		require.Equal(t, *le.Score, l.Score, "lead %s score", le.Ref)
	}
	for name, want := range le.Traits {
		got, ok := l.Traits[name]
		if want == nil {
			require.False(t, ok, "lead %s trait %s must be absent, is %s", le.Ref, name, got)
			continue
		}
		require.True(t, ok, "lead %s trait %s (traits %v)", le.Ref, name, l.Traits)
		require.JSONEq(t, string(mustJSON(t, want)), string(got), "lead %s trait %s", le.Ref, name)
	}
	for name, want := range le.TraitTimes {
		at, err := time.Parse(time.RFC3339, want)
		require.NoError(t, err)
		require.Equal(t, at, l.TraitTimes[name], "lead %s time of trait %s", le.Ref, name)
	}
	if le.Lists != nil {
		require.Equal(t, le.Lists, l.Lists, "lead %s lists", le.Ref)
	}
	if le.Visitors != nil {
		require.Len(t, l.Visitors, *le.Visitors, "lead %s visitors %v", le.Ref, l.Visitors)
	}

	// The profile's count, the stored entries and the timeline agree.
	all, err := r.pl.timeline(l.ID, nil, 7)
	require.NoError(t, err, "timeline of lead %s", le.Ref)
	stored := len(r.pl.keys(r.pl.activityPrefix(l.ID)))
	require.Len(t, all, stored, "lead %s: the timeline pages hold every stored activity", le.Ref)
	require.Equal(t, stored, l.Activities, "lead %s: activity_count is the number stored", le.Ref)
	for i := 1; i < len(all); i++ {
		require.False(t, all[i].Time.After(all[i-1].Time), "lead %s: timeline newest first at %d", le.Ref, i)
	}
	if le.Activities != nil {
		require.Equal(t, *le.Activities, stored, "lead %s activities stored", le.Ref)
	}
	if le.Timeline == nil && le.NewestFirst == nil {
		return
	}
	acts, err := r.pl.timeline(l.ID, le.Types, 3)
	require.NoError(t, err)
	newest := make([]string, 0, len(acts))
	for _, a := range acts {
		newest = append(newest, r.describe(a))
	}
	if le.NewestFirst != nil {
		require.Equal(t, le.NewestFirst, newest, "lead %s timeline, newest first, of types %v", le.Ref, le.Types)
	}
	if le.Timeline != nil {
		oldest := slices.Clone(newest)
		slices.Reverse(oldest)
		require.Equal(t, le.Timeline, oldest, "lead %s timeline, oldest first, of types %v", le.Ref, le.Types)
	}
}

func (r *runner) checkVisitor(anon string, ve visitorExpect) {
	t := r.t
	s, ok := r.pl.readVisitor(anon)
	require.True(t, ok, "visitor %s has a state", anon)
	history := len(r.pl.keys(r.pl.historyPrefix(anon)))
	require.Equal(t, int(s.histNext-s.histFirst), history, "visitor %s: history entries stored and counted", anon)
	if ve.Erased {
		require.Equal(t, erasedLead, s.lead, "visitor %s is erased", anon)
		require.Zero(t, history, "visitor %s: no history after erasure", anon)
	}
	if ve.Lead != nil {
		want := ""
		if *ve.Lead != "" {
			want = r.leadID(*ve.Lead)
		}
		require.Equal(t, want, s.lead, "visitor %s linked to %q", anon, *ve.Lead)
	}
	if ve.History != nil {
		require.Equal(t, *ve.History, history, "visitor %s history", anon)
	}
}
