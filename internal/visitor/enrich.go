package visitor

import (
	"github.com/tidwall/gjson"

	"github.com/contrailhq/contrail/internal/enrich"
	"github.com/contrailhq/contrail/internal/event"
)

// pageInfo is what enrichment reads from an event's JSON.
type pageInfo struct {
	url, referrer, path string
	userAgent, library  string
	campaign            []byte // context.campaign, raw
}

// readPage reads the page, user agent, library and campaign of e: a page
// call's properties first (Segment's page spec), then context.page.
func readPage(e *event.Event) pageInfo {
	var pi pageInfo
	if e.Type == event.TypePage && len(e.Properties) > 0 {
		gjson.ParseBytes(e.Properties).ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "url":
				pi.url = v.Str
			case "referrer":
				pi.referrer = v.Str
			case "path":
				pi.path = v.Str
			}
			return true
		})
	}
	if len(e.Context) == 0 {
		return pi
	}
	gjson.ParseBytes(e.Context).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "userAgent":
			pi.userAgent = v.Str
		case "library":
			pi.library = v.Get("name").Str
		case "campaign":
			if v.IsObject() {
				pi.campaign = []byte(v.Raw)
			}
		case "page":
			v.ForEach(func(k, v gjson.Result) bool {
				switch k.Str {
				case "url":
					if pi.url == "" {
						pi.url = v.Str
					}
				case "referrer":
					if pi.referrer == "" {
						pi.referrer = v.Str
					}
				case "path":
					if pi.path == "" {
						pi.path = v.Str
					}
				}
				return true
			})
		}
		return true
	})
	return pi
}

// enrichEvent fills e.Enrichment's user agent, bot, page, referrer and UTM
// fields. The country was resolved by the collector, before the tenant's
// IP policy could drop the address.
func (p *Processor) enrichEvent(e *event.Event) {
	pi := readPage(e)
	x := &e.Enrichment
	if pi.userAgent != "" {
		ua := p.ua.Parse(pi.userAgent)
		x.Browser, x.OS, x.Device = ua.Browser, ua.OS, ua.Device
		// The bot list describes browsers; a server SDK's user agent is
		// the server's own, so it says nothing about the person. A form
		// post comes straight from the browser.
		x.Bot = ua.Bot && (e.Type == event.TypeForm || enrich.IsBrowserLibrary(pi.library))
		if ua.Bot && !x.Bot {
			x.Device = enrich.DeviceOther
		}
	}
	if pi.path != "" {
		x.Path = pi.path
	} else if pi.url != "" {
		x.Path = enrich.Path(pi.url)
	}
	utm := enrich.ResolveUTM(pi.campaign, pi.url)
	x.UTMSource, x.UTMMedium, x.UTMCampaign, x.UTMTerm, x.UTMContent = utm.Source, utm.Medium, utm.Campaign, utm.Term, utm.Content
	if e.Type == event.TypePage || pi.referrer != "" {
		x.Channel, x.ReferrerDomain = enrich.Channel(pi.referrer, pi.url, utm.Medium)
	}
}
