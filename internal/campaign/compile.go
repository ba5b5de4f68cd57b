package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/contrailhq/contrail/internal/lead"
	"github.com/contrailhq/contrail/internal/tenant"
)

// triggerActivity maps each trigger type to the activity type it listens to.
var triggerActivity = map[string]string{
	TrigVisitsWebPage:     lead.ActVisitPage,
	TrigClicksLink:        lead.ActClickLink,
	TrigFillsOutForm:      lead.ActFillForm,
	TrigEventTracked:      lead.ActTrack,
	TrigDataValueChanges:  lead.ActChangeField,
	TrigScoreChanged:      lead.ActChangeScore,
	TrigAddedToList:       lead.ActAddToList,
	TrigRemovedFromList:   lead.ActRemoveList,
	TrigLeadCreated:       lead.ActCreateLead,
	TrigCampaignRequested: actCampaignRequested,
}

// actCampaignRequested is the pseudo activity of a campaign request.
const actCampaignRequested = "campaign_requested"

// Limits on a campaign's size.
const (
	maxSteps    = 200
	maxTriggers = 20
	maxFilters  = 20
	maxMinCount = 1000
)

// Version is a published campaign, compiled: immutable, and what every
// run started on it keeps using.
type Version struct {
	Campaign string
	Tenant   string
	Number   int
	Name     string
	Priority int
	Spec     Spec

	triggers   []*trigger
	filters    []*Expr
	prog       []*step
	qual       string
	qualPeriod time.Duration
	limits     CommunicationLimits
	restrict   PersonRestriction
	backfill   bool
	backfillAt time.Duration // the oldest back-filled activity that may trigger
}

// trigger is a compiled Trigger.
type trigger struct {
	Trigger
	activity   string
	constraint *Expr
	within     time.Duration
	today      bool
}

// Step kinds beyond the public ones: an internal jump to the end of a
// choice's branch.
const stepJump = "jump"

// step is one instruction of a compiled flow. A choice is flattened into
// jumps: its branches follow it, each ending with a jump past the others.
type step struct {
	Step
	path string
	kind string
	next int // the step after this one
	// choice
	conds   []*Expr
	targets []int // one per branch, then the default
	// wait, wait_for_event
	wait     time.Duration
	until    time.Time
	weekdays [7]bool
	anyDay   bool
	trig     *trigger
	// templates
	tmpl map[string]*Template
}

// CompileOptions configure Compile.
type CompileOptions struct {
	// CheckURL, when set, vets each webhook URL at publish (the SSRF guard).
	CheckURL func(ctx context.Context, raw string) error
	// BackfillWindow caps how old back-filled history may trigger (the
	// tenant's setting).
	BackfillWindow time.Duration
}

// Compile validates a campaign and compiles it. All problems are
// reported at once, in a *ValidationError.
func Compile(ctx context.Context, x *Exprs, s Spec, opt CompileOptions) (*Version, error) {
	c := &compiler{ctx: ctx, x: x, opt: opt}
	v := &Version{Name: s.Name, Priority: s.Priority, Spec: s}
	if strings.TrimSpace(s.Name) == "" {
		c.fail("name", "a name is required")
	} else if len(s.Name) > 200 {
		c.fail("name", "at most 200 characters")
	}
	if len(s.Triggers) == 0 {
		c.fail("triggers", "at least one trigger is required")
	}
	if len(s.Triggers) > maxTriggers {
		c.fail("triggers", fmt.Sprintf("at most %d triggers", maxTriggers))
	}
	for i, t := range s.Triggers {
		if ct := c.trigger(fmt.Sprintf("triggers[%d]", i), t); ct != nil {
			v.triggers = append(v.triggers, ct)
		}
	}
	if len(s.Filters) > maxFilters {
		c.fail("filters", fmt.Sprintf("at most %d filters", maxFilters))
	}
	for i, f := range s.Filters {
		if e := c.expr(fmt.Sprintf("filters[%d]", i), f); e != nil {
			v.filters = append(v.filters, e)
		}
	}
	if len(s.Flow) == 0 {
		c.fail("flow", "at least one step is required")
	}
	c.flow("flow", s.Flow)
	v.prog = c.prog
	if len(v.prog) > maxSteps {
		c.fail("flow", fmt.Sprintf("at most %d steps, choices' branches included", maxSteps))
	}
	switch s.Qualification {
	case "", QualOnce:
		v.qual = QualOnce
	case QualEveryTime, QualOneActive:
		v.qual = s.Qualification
	case QualOncePer:
		v.qual = QualOncePer
		d, err := tenant.ParseDuration(s.QualificationPeriod)
		if err != nil || d <= 0 {
			c.fail("qualification_period", "once_per needs a period such as \"7d\" or \"12h\"")
		}
		v.qualPeriod = d.D()
	default:
		c.fail("qualification", fmt.Sprintf("%q: want once, every_time, once_per or one_active", s.Qualification))
	}
	if s.Qualification != QualOncePer && s.QualificationPeriod != "" {
		c.fail("qualification_period", "only with qualification once_per")
	}
	if l := s.CommunicationLimits; l != nil {
		if l.PerDay < 0 || l.PerWeek < 0 {
			c.fail("communication_limits", "limits must not be negative")
		}
		v.limits = *l
	}
	if r := s.PersonRestriction; r != nil {
		v.restrict = *r
	}
	if b := s.Backfill; b != nil && b.Allow {
		v.backfill = true
		v.backfillAt = opt.BackfillWindow
		if b.MaxAge != "" {
			d, err := tenant.ParseDuration(b.MaxAge)
			if err != nil || d <= 0 {
				c.fail("backfill.max_age", "want a duration such as \"24h\" or \"7d\"")
			} else if opt.BackfillWindow == 0 || d.D() < opt.BackfillWindow {
				v.backfillAt = d.D()
			}
		}
	}
	if len(c.problems) > 0 {
		return nil, &ValidationError{Problems: c.problems}
	}
	return v, nil
}

type compiler struct {
	ctx      context.Context
	x        *Exprs
	opt      CompileOptions
	prog     []*step
	problems []FieldError
}

func (c *compiler) fail(path, msg string) {
	c.problems = append(c.problems, FieldError{Path: path, Message: msg})
}

func (c *compiler) expr(path, src string) *Expr {
	if strings.TrimSpace(src) == "" {
		c.fail(path, "an expression is required")
		return nil
	}
	e, probs := c.x.Compile(path, src)
	c.problems = append(c.problems, probs...)
	return e
}

func (c *compiler) trigger(path string, t Trigger) *trigger {
	act, ok := triggerActivity[t.Type]
	if !ok {
		c.fail(path+".type", fmt.Sprintf("%q: want one of %s", t.Type, strings.Join(slices.Sorted(maps.Keys(triggerActivity)), ", ")))
		return nil
	}
	ct := &trigger{Trigger: t, activity: act}
	if t.Constraint != "" {
		ct.constraint = c.expr(path+".constraint", t.Constraint)
	}
	if t.MinCount < 0 || t.MinCount > maxMinCount {
		c.fail(path+".min_count", fmt.Sprintf("want 0..%d", maxMinCount))
	}
	switch {
	case t.MinCount > 1 && t.Within == "":
		c.fail(path+".within", "min_count needs a window: a duration such as \"24h\", or \"today\"")
	case t.Within == "today":
		ct.today = true
	case t.Within != "":
		d, err := tenant.ParseDuration(t.Within)
		if err != nil || d <= 0 || d.D() > 366*24*time.Hour {
			c.fail(path+".within", "want a duration up to 366d, or \"today\"")
		}
		ct.within = d.D()
	}
	if t.Within != "" && t.MinCount < 1 {
		c.fail(path+".min_count", "within needs min_count")
	}
	return ct
}

// flow compiles steps in place in the program.
func (c *compiler) flow(path string, steps []Step) {
	for i, s := range steps {
		c.step(fmt.Sprintf("%s[%d]", path, i), s)
	}
}

var weekdayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (c *compiler) step(path string, s Step) {
	st := &step{Step: s, path: path, kind: s.Type, anyDay: true}
	pc := len(c.prog)
	c.prog = append(c.prog, st)
	st.next = pc + 1
	switch s.Type {
	case StepChangeField:
		if s.Field == "" {
			c.fail(path+".field", "a field is required")
		}
		if len(s.Value) == 0 || !json.Valid(s.Value) {
			c.fail(path+".value", "a JSON value is required (null removes the field)")
		}
		if len(s.Value) > 0 && s.Value[0] == '"' {
			var v string
			_ = json.Unmarshal(s.Value, &v)
			c.templates(st, path, map[string]string{"value": v})
		}
	case StepChangeScore:
		if s.Change == 0 {
			c.fail(path+".change", "a non-zero change is required")
		}
	case StepAddToList, StepRemoveFromList:
		if s.List == "" {
			c.fail(path+".list", "a list is required")
		}
	case StepInterestingMoment:
		if s.Description == "" {
			c.fail(path+".description", "a description is required")
		}
		c.templates(st, path, map[string]string{"description": s.Description})
	case StepRequestCampaign:
		if s.Campaign == "" {
			c.fail(path+".campaign", "the campaign to request is required")
		}
	case StepRemoveFromFlow:
	case StepWait:
		c.wait(st, path, s)
	case StepWaitForEvent:
		if s.Trigger == nil {
			c.fail(path+".trigger", "the awaited activity is required")
		} else {
			st.trig = c.trigger(path+".trigger", *s.Trigger)
		}
		d, err := tenant.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			c.fail(path+".timeout", "a timeout such as \"2d\" is required")
		}
		st.wait = d.D()
	case StepChoice:
		if len(s.Branches) == 0 {
			c.fail(path+".branches", "at least one branch is required")
		}
		var jumps []*step
		for i, b := range s.Branches {
			bp := fmt.Sprintf("%s.branches[%d]", path, i)
			st.conds = append(st.conds, c.expr(bp+".if", b.If))
			st.targets = append(st.targets, len(c.prog))
			c.flow(bp+".flow", b.Flow)
			j := &step{kind: stepJump, path: bp + ".end"}
			c.prog = append(c.prog, j)
			jumps = append(jumps, j)
		}
		st.targets = append(st.targets, len(c.prog))
		c.flow(path+".default", s.Default)
		for _, j := range jumps {
			j.next = len(c.prog)
		}
	case StepCallWebhook:
		c.webhook(st, path, s)
	case StepSendEmail:
		if s.Subject == "" {
			c.fail(path+".subject", "a subject is required")
		}
		if s.Text == "" && s.HTML == "" {
			c.fail(path+".text", "a text or html body is required")
		}
		c.templates(st, path, map[string]string{"subject": s.Subject, "text": s.Text, "html": s.HTML, "from": s.From})
	case "":
		c.fail(path+".type", "a step type is required")
	default:
		c.fail(path+".type", fmt.Sprintf("%q: want one of %s", s.Type, strings.Join(stepTypes, ", ")))
	}
}

var stepTypes = []string{
	StepChangeField, StepChangeScore, StepAddToList, StepRemoveFromList, StepInterestingMoment,
	StepRequestCampaign, StepRemoveFromFlow, StepWait, StepWaitForEvent, StepChoice, StepCallWebhook, StepSendEmail,
}

func (c *compiler) wait(st *step, path string, s Step) {
	switch {
	case s.Duration != "" && s.Until != "":
		c.fail(path, "a wait has a duration or an until time, not both")
	case s.Duration != "":
		d, err := tenant.ParseDuration(s.Duration)
		if err != nil || d <= 0 {
			c.fail(path+".duration", "want a duration such as \"10m\" or \"2d\"")
		}
		st.wait = d.D()
	case s.Until != "":
		t, err := time.Parse(time.RFC3339, s.Until)
		if err != nil {
			c.fail(path+".until", "want an RFC 3339 time")
		}
		st.until = t
	case len(s.Weekdays) == 0 && s.Hours == nil:
		c.fail(path+".duration", "a duration, an until time, or weekdays/hours is required")
	}
	if len(s.Weekdays) > 0 {
		st.anyDay = false
		for _, d := range s.Weekdays {
			wd, ok := weekdayNames[strings.ToLower(d)]
			if !ok {
				c.fail(path+".weekdays", fmt.Sprintf("%q: want mon, tue, wed, thu, fri, sat or sun", d))
				continue
			}
			st.weekdays[wd] = true
		}
	}
	if h := s.Hours; h != nil && (h.From < 0 || h.To > 24 || h.From >= h.To) {
		c.fail(path+".hours", "want 0 <= from < to <= 24")
	}
}

var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

func (c *compiler) webhook(st *step, path string, s Step) {
	if s.URL == "" {
		c.fail(path+".url", "a URL is required")
		return
	}
	if s.Method != "" && !slices.Contains(methods, strings.ToUpper(s.Method)) {
		c.fail(path+".method", fmt.Sprintf("%q: want GET, POST, PUT, PATCH or DELETE", s.Method))
	}
	if s.TimeoutMS < 0 || s.TimeoutMS > 60_000 {
		c.fail(path+".timeout_ms", "want 0..60000")
	}
	// Tokens may fill the path and query, never the scheme or host: the
	// host is checked here, at publish.
	u, err := url.Parse(tokenRE.ReplaceAllString(s.URL, "x"))
	switch {
	case err != nil || u.Host == "":
		c.fail(path+".url", "want an absolute http or https URL")
		return
	case u.Scheme != "http" && u.Scheme != "https":
		c.fail(path+".url", "want an http or https URL")
		return
	case strings.Contains(hostPart(s.URL), "{{"):
		c.fail(path+".url", "tokens may not be used in the host")
		return
	}
	if c.opt.CheckURL != nil {
		if err := c.opt.CheckURL(c.ctx, s.URL); err != nil {
			c.fail(path+".url", err.Error())
		}
	}
	t := map[string]string{"url": s.URL, "body": s.Body}
	for k, v := range s.Headers {
		t["header:"+k] = v
	}
	c.templates(st, path, t)
}

// hostPart returns the scheme and authority of a URL as written.
func hostPart(raw string) string {
	rest := raw
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func (c *compiler) templates(st *step, path string, fields map[string]string) {
	for name, src := range fields {
		if src == "" {
			continue
		}
		t, err := ParseTemplate(src)
		if err != nil {
			c.fail(path+"."+strings.TrimPrefix(name, "header:"), err.Error())
			continue
		}
		if st.tmpl == nil {
			st.tmpl = map[string]*Template{}
		}
		st.tmpl[name] = t
	}
}

var tokenRE = regexp.MustCompile(`\{\{[^}]*\}\}`)
