package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/glob"
)

// IP policies: what the collector does with a client's address before the
// event is stored.
const (
	IPKeep      = "keep"      // store it as sent
	IPAnonymize = "anonymize" // zero the last IPv4 octet (IPv6: last 80 bits)
	IPDrop      = "drop"      // store no address
)

// What the collector does with a paused tenant's events (PausedIntake)
// and with events over the daily quota (OverQuota).
const (
	IntakeAccept = "accept" // store them; they are processed on resume
	IntakeRefuse = "refuse" // answer 503 tenant_paused

	OverQuotaRefuse = "refuse" // answer 429 quota_exceeded
	OverQuotaDrop   = "drop"   // answer 200, each event's result says quota_exceeded
)

// Settings are a tenant's processing choices. A zero field means the
// default from DefaultSettings.
type Settings struct {
	// IPPolicy is keep (default), anonymize or drop. The country is looked
	// up before the policy applies.
	IPPolicy string `json:"ip_policy,omitempty"`
	// SessionTimeout ends a session after this much inactivity (30m).
	SessionTimeout Duration `json:"session_timeout,omitempty"`
	// SessionMaxLength ends a session that lasted this long (24h).
	SessionMaxLength Duration `json:"session_max_length,omitempty"`
	// SplitSessionOnCampaign starts a new session when the UTM campaign changes.
	SplitSessionOnCampaign bool `json:"split_session_on_campaign,omitempty"`
	// HistoryLimit and HistoryWindow bound the anonymous history kept per
	// visitor and handed to the lead on promotion (200, 30 days).
	HistoryLimit  int      `json:"history_limit,omitempty"`
	HistoryWindow Duration `json:"history_window,omitempty"`
	// VisitorRetention drops a visitor's state after this long without
	// activity (30 days).
	VisitorRetention Duration `json:"visitor_retention,omitempty"`
	// BlockedIDs are refused as ids, in addition to DefaultBlockedIDs.
	BlockedIDs []string `json:"blocked_ids,omitempty"`
	// Timezone is the IANA zone of the tenant's days: the web reports'
	// day buckets start at its midnight (UTC).
	Timezone string `json:"timezone,omitempty"`
	// Goals are the conversions the web reports count. A goal counts from
	// the moment it is defined: events are matched as they are processed.
	Goals []Goal `json:"goals,omitempty"`
	// ReportMinuteRetention, ReportHourRetention and ReportRetention keep
	// the web reports' minute, hour and day buckets (48h, 90d, 730d).
	ReportMinuteRetention Duration `json:"report_minute_retention,omitempty"`
	ReportHourRetention   Duration `json:"report_hour_retention,omitempty"`
	ReportRetention       Duration `json:"report_retention,omitempty"`
	// LeadActivityLimit bounds the activities kept per known lead (10000);
	// LeadActivityRetention drops those older than this, counted back from
	// the lead's last activity (365d).
	LeadActivityLimit     int      `json:"lead_activity_limit,omitempty"`
	LeadActivityRetention Duration `json:"lead_activity_retention,omitempty"`
	// BackfillTriggerWindow is how old back-filled anonymous history may
	// be and still trigger the campaigns that allow it (24h).
	BackfillTriggerWindow Duration `json:"backfill_trigger_window,omitempty"`
	// EmailFrom is the From address of campaign emails that name none.
	EmailFrom string `json:"email_from,omitempty"`
	// PausedIntake is what the collector does while the tenant is paused:
	// accept (default) or refuse.
	PausedIntake string `json:"paused_intake,omitempty"`
	// OverQuota is what the collector does with events over the daily
	// quota: refuse the request (default) or accept it and drop them.
	OverQuota string `json:"over_quota,omitempty"`
}

// Goal is a conversion the web reports count: a page view whose path
// matches Page, or a track event named Event; with Property, only when
// that property of the event equals Value.
type Goal struct {
	Name string `json:"name"`
	// Page is a path pattern: * matches within one path segment, ** across
	// segments (/blog/**).
	Page     string `json:"page,omitempty"`
	Event    string `json:"event,omitempty"`
	Property string `json:"property,omitempty"`
	Value    string `json:"value,omitempty"`
}

// CompilePage compiles a goal's page pattern.
func (g Goal) CompilePage() (*glob.Pattern, error) { return glob.Compile(g.Page, '/') }

// Location returns the tenant's time zone (UTC when unset or unknown).
func (s Settings) Location() *time.Location {
	if s.Timezone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// DefaultSettings returns the settings of a tenant that chose none.
func DefaultSettings() Settings {
	return Settings{
		IPPolicy:         IPKeep,
		SessionTimeout:   Duration(30 * time.Minute),
		SessionMaxLength: Duration(24 * time.Hour),
		HistoryLimit:     200,
		HistoryWindow:    Duration(30 * 24 * time.Hour),
		VisitorRetention: Duration(30 * 24 * time.Hour),
		Timezone:         "UTC",

		ReportMinuteRetention: Duration(48 * time.Hour),
		ReportHourRetention:   Duration(90 * 24 * time.Hour),
		ReportRetention:       Duration(730 * 24 * time.Hour),

		LeadActivityLimit:     10000,
		LeadActivityRetention: Duration(365 * 24 * time.Hour),
		BackfillTriggerWindow: Duration(24 * time.Hour),

		PausedIntake: IntakeAccept,
		OverQuota:    OverQuotaRefuse,
	}
}

// WithDefaults returns s with zero fields replaced by the defaults.
func (s Settings) WithDefaults() Settings {
	d := DefaultSettings()
	if s.IPPolicy == "" {
		s.IPPolicy = d.IPPolicy
	}
	if s.SessionTimeout == 0 {
		s.SessionTimeout = d.SessionTimeout
	}
	if s.SessionMaxLength == 0 {
		s.SessionMaxLength = d.SessionMaxLength
	}
	if s.HistoryLimit == 0 {
		s.HistoryLimit = d.HistoryLimit
	}
	if s.HistoryWindow == 0 {
		s.HistoryWindow = d.HistoryWindow
	}
	if s.VisitorRetention == 0 {
		s.VisitorRetention = d.VisitorRetention
	}
	if s.Timezone == "" {
		s.Timezone = d.Timezone
	}
	if s.ReportMinuteRetention == 0 {
		s.ReportMinuteRetention = d.ReportMinuteRetention
	}
	if s.ReportHourRetention == 0 {
		s.ReportHourRetention = d.ReportHourRetention
	}
	if s.ReportRetention == 0 {
		s.ReportRetention = d.ReportRetention
	}
	if s.LeadActivityLimit == 0 {
		s.LeadActivityLimit = d.LeadActivityLimit
	}
	if s.LeadActivityRetention == 0 {
		s.LeadActivityRetention = d.LeadActivityRetention
	}
	if s.BackfillTriggerWindow == 0 {
		s.BackfillTriggerWindow = d.BackfillTriggerWindow
	}
	if s.PausedIntake == "" {
		s.PausedIntake = d.PausedIntake
	}
	if s.OverQuota == "" {
		s.OverQuota = d.OverQuota
	}
	return s
}

// Validate reports settings that cannot be applied.
func (s Settings) Validate() error {
	var errs []error
	switch s.IPPolicy {
	case "", IPKeep, IPAnonymize, IPDrop:
	default:
		errs = append(errs, fmt.Errorf("ip_policy %q: want keep, anonymize or drop", s.IPPolicy))
	}
	switch s.PausedIntake {
	case "", IntakeAccept, IntakeRefuse:
	default:
		errs = append(errs, fmt.Errorf("paused_intake %q: want accept or refuse", s.PausedIntake))
	}
	switch s.OverQuota {
	case "", OverQuotaRefuse, OverQuotaDrop:
	default:
		errs = append(errs, fmt.Errorf("over_quota %q: want refuse or drop", s.OverQuota))
	}
	if s.SessionTimeout < 0 || s.SessionMaxLength < 0 || s.HistoryWindow < 0 || s.VisitorRetention < 0 || s.HistoryLimit < 0 {
		errs = append(errs, errors.New("settings must not be negative"))
	}
	if s.SessionTimeout != 0 && (s.SessionTimeout < Duration(time.Minute) || s.SessionTimeout > Duration(24*time.Hour)) {
		errs = append(errs, fmt.Errorf("session_timeout %s: between 1m and 24h", s.SessionTimeout))
	}
	if s.SessionMaxLength != 0 && (s.SessionMaxLength < Duration(time.Hour) || s.SessionMaxLength > Duration(7*24*time.Hour)) {
		errs = append(errs, fmt.Errorf("session_max_length %s: between 1h and 7d", s.SessionMaxLength))
	}
	if s.HistoryLimit > 10000 {
		errs = append(errs, fmt.Errorf("history_limit %d: at most 10000", s.HistoryLimit))
	}
	if s.HistoryWindow > Duration(400*24*time.Hour) || s.VisitorRetention > Duration(400*24*time.Hour) {
		errs = append(errs, errors.New("history_window and visitor_retention: at most 400d"))
	}
	if s.VisitorRetention != 0 && s.VisitorRetention < Duration(24*time.Hour) {
		errs = append(errs, fmt.Errorf("visitor_retention %s: at least 1d", s.VisitorRetention))
	}
	if len(s.BlockedIDs) > 1000 {
		errs = append(errs, errors.New("blocked_ids: at most 1000"))
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			errs = append(errs, fmt.Errorf("timezone %q: not an IANA time zone", s.Timezone))
		}
	}
	if s.LeadActivityLimit < 0 || s.LeadActivityLimit > 100000 {
		errs = append(errs, fmt.Errorf("lead_activity_limit %d: between 1 and 100000", s.LeadActivityLimit))
	}
	if s.LeadActivityRetention != 0 && (s.LeadActivityRetention < Duration(24*time.Hour) || s.LeadActivityRetention > Duration(10*366*24*time.Hour)) {
		errs = append(errs, fmt.Errorf("lead_activity_retention %s: between 1d and 3660d", s.LeadActivityRetention))
	}
	if s.BackfillTriggerWindow < 0 || s.BackfillTriggerWindow > Duration(30*24*time.Hour) {
		errs = append(errs, fmt.Errorf("backfill_trigger_window %s: at most 30d", s.BackfillTriggerWindow))
	}
	if s.EmailFrom != "" {
		if _, err := mail.ParseAddress(s.EmailFrom); err != nil {
			errs = append(errs, fmt.Errorf("email_from %q: not an email address", s.EmailFrom))
		}
	}
	errs = append(errs, validateReportRetention(s)...)
	errs = append(errs, validateGoals(s.Goals)...)
	return errors.Join(errs...)
}

func validateReportRetention(s Settings) []error {
	var errs []error
	if s.ReportMinuteRetention != 0 && (s.ReportMinuteRetention < Duration(2*time.Hour) || s.ReportMinuteRetention > Duration(30*24*time.Hour)) {
		errs = append(errs, fmt.Errorf("report_minute_retention %s: between 2h and 30d", s.ReportMinuteRetention))
	}
	if s.ReportHourRetention != 0 && (s.ReportHourRetention < Duration(2*24*time.Hour) || s.ReportHourRetention > Duration(800*24*time.Hour)) {
		errs = append(errs, fmt.Errorf("report_hour_retention %s: between 2d and 800d", s.ReportHourRetention))
	}
	if s.ReportRetention != 0 && (s.ReportRetention < Duration(2*24*time.Hour) || s.ReportRetention > Duration(10*366*24*time.Hour)) {
		errs = append(errs, fmt.Errorf("report_retention %s: between 2d and 3660d", s.ReportRetention))
	}
	return errs
}

func validateGoals(goals []Goal) []error {
	var errs []error
	if len(goals) > 100 {
		errs = append(errs, errors.New("goals: at most 100"))
	}
	names := map[string]bool{}
	for i, g := range goals {
		switch {
		case strings.TrimSpace(g.Name) == "" || len(g.Name) > 200:
			errs = append(errs, fmt.Errorf("goals[%d]: a name of 1 to 200 characters is required", i))
		case names[g.Name]:
			errs = append(errs, fmt.Errorf("goals[%d]: the name %q is used twice", i, g.Name))
		}
		names[g.Name] = true
		if (g.Page == "") == (g.Event == "") {
			errs = append(errs, fmt.Errorf("goals[%d] %q: give exactly one of page and event", i, g.Name))
		}
		if g.Page != "" {
			if _, err := g.CompilePage(); err != nil {
				errs = append(errs, fmt.Errorf("goals[%d] %q: page pattern %q: %w", i, g.Name, g.Page, err))
			}
		}
		if g.Value != "" && g.Property == "" {
			errs = append(errs, fmt.Errorf("goals[%d] %q: value without property", i, g.Name))
		}
	}
	return errs
}

// DefaultBlockedIDs returns the values that libraries send when the real id
// is missing; accepting them would merge unrelated people (DESIGN.md §6).
// Empty and whitespace-only values are refused too.
func DefaultBlockedIDs() []string { return defaultBlocked[:] }

var defaultBlocked = [...]string{"anonymous", "null", "undefined", "0", "[object object]", "nil", "none", "-1"}

// IsBlockedID reports whether s is refused as an id by default: empty,
// whitespace, or one of DefaultBlockedIDs (case-insensitive).
func IsBlockedID(s string) bool {
	t := strings.TrimSpace(s)
	if t == "" {
		return true
	}
	for _, b := range defaultBlocked {
		if strings.EqualFold(t, b) {
			return true
		}
	}
	return false
}

// IsBlockedID reports whether s is refused as an id by the tenant: by
// default or by its own list.
func (t *Tenant) IsBlockedID(s string) bool {
	if IsBlockedID(s) {
		return true
	}
	for _, b := range t.Settings.BlockedIDs {
		if strings.EqualFold(strings.TrimSpace(s), b) {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written in JSON as a string such as "30m",
// "720h" or "30d" (days are 24 hours).
type Duration time.Duration

// String formats d with days when it is a whole number of them.
func (d Duration) String() string {
	day := Duration(24 * time.Hour)
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return time.Duration(d).String()
}

// ParseDuration reads a duration in Go syntax, or a whole number of days "Nd".
func ParseDuration(s string) (Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("duration %q: want e.g. 30m, 12h or 30d", s)
		}
		return Duration(time.Duration(days) * 24 * time.Hour), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want e.g. 30m, 12h or 30d", s)
	}
	return Duration(v), nil
}

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string duration, or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration: want a string such as \"30m\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
