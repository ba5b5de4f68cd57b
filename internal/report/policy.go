package report

import "time"

// Policy is a tenant's rollup settings.
type Policy struct {
	// Location aligns day buckets to the tenant's midnight (UTC if nil).
	// In a zone whose offset is not whole hours, days start at the hour
	// before midnight.
	Location *time.Location
	// MinuteRetention, HourRetention and Retention keep minute, hour and
	// day buckets this long after they end (by the partition's clock).
	MinuteRetention, HourRetention, Retention time.Duration
	// RowLimit bounds the rows per dimension of an hour or day bucket; the
	// rest are folded into Other.
	RowLimit int
}

// DefaultPolicy returns the defaults: minutes for 48 hours, hours for 90
// days, days for two years, 5000 rows.
func DefaultPolicy() Policy {
	return Policy{
		Location: time.UTC, MinuteRetention: 48 * time.Hour, HourRetention: 90 * 24 * time.Hour,
		Retention: 730 * 24 * time.Hour, RowLimit: 5000,
	}
}

func (p Policy) loc() *time.Location {
	if p.Location == nil {
		return time.UTC
	}
	return p.Location
}

// compactGrace is how long after an hour or a day ends, by the partition's
// clock, it is compacted. Events that arrive later still count: they are
// added to the compacted bucket too.
const compactGrace = 5 * 60

func floorHour(sec int64) int64 { return sec - mod(sec, 3600) }

func floorMinute(sec int64) int64 { return sec - mod(sec, 60) }

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// dayStart returns the start of the day holding sec in loc: the local
// midnight, rounded down to the hour.
func dayStart(sec int64, loc *time.Location) int64 {
	// The day is the local date of sec or, within the hour before a
	// rounded-down midnight, the next one.
	y, m, d := time.Unix(sec+3599, 0).In(loc).Date()
	s := floorHour(time.Date(y, m, d, 0, 0, 0, 0, loc).Unix())
	if s > sec {
		s = floorHour(time.Date(y, m, d-1, 0, 0, 0, 0, loc).Unix())
	}
	return s
}

// nextDay returns the start of the day after the one starting at start.
func nextDay(start int64, loc *time.Location) int64 {
	return dayStart(start+30*3600, loc)
}

// weekStart returns the start of the week holding sec in loc: Monday's
// dayStart.
func weekStart(sec int64, loc *time.Location) int64 {
	d := dayStart(sec, loc)
	t := time.Unix(d+3599, 0).In(loc)  // a time on the day's date (see dayStart)
	back := (int(t.Weekday()) + 6) % 7 // days since Monday
	y, m, dd := t.Date()
	return dayStart(time.Date(y, m, dd-back, 12, 0, 0, 0, loc).Unix(), loc)
}

// nextWeek returns the start of the week after the one starting at start.
func nextWeek(start int64, loc *time.Location) int64 {
	return weekStart(start+8*86400, loc)
}
