package campaign

import "time"

// due returns when a wait step that starts at now ends: after its
// duration (or at its until time), then at the first moment on an allowed
// weekday within the allowed hours, in the tenant's zone.
func (st *step) due(now time.Time, loc *time.Location) time.Time {
	t := now
	switch {
	case st.wait > 0:
		t = now.Add(st.wait)
	case !st.until.IsZero() && st.until.After(now):
		t = st.until
	}
	if st.anyDay && st.Hours == nil {
		return t
	}
	t = t.In(loc)
	from, to := 0, 24
	if h := st.Hours; h != nil {
		from, to = h.From, h.To
	}
	startOfDay := func(t time.Time) time.Time {
		y, m, d := t.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	}
	for range 8 { // a week and a day always holds an allowed moment
		day := startOfDay(t)
		if st.anyDay || st.weekdays[t.Weekday()] {
			open := day.Add(time.Duration(from) * time.Hour)
			closeAt := day.Add(time.Duration(to) * time.Hour)
			if t.Before(open) {
				return open
			}
			if t.Before(closeAt) {
				return t
			}
		}
		t = startOfDay(day.Add(36 * time.Hour)) // the next day, across a DST change
	}
	return t
}
