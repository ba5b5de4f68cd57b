package enrich_test

import (
	"fmt"

	"github.com/contrailhq/contrail/internal/enrich"
)

func ExampleUAParser_Parse() {
	p := enrich.NewUAParser(4096)
	ua := p.Parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1")
	fmt.Println(ua.Browser, ua.OS, ua.Device, ua.Bot)
	bot := p.Parse("curl/8.5.0")
	// A bot verdict counts only for events that a browser library sent.
	fmt.Println(bot.Device, bot.Bot && enrich.IsBrowserLibrary("analytics.js"), bot.Bot && enrich.IsBrowserLibrary("analytics-go"))
	// Output:
	// Safari iOS mobile false
	// bot true false
}

func ExampleChannel() {
	page := "https://www.example.com/launch?utm_source=newsletter&utm_medium=email&utm_campaign=launch%20week"
	utm := enrich.ResolveUTM(nil, page)
	channel, domain := enrich.Channel("https://mail.google.com/", page, utm.Medium)
	fmt.Printf("%s %s %q %s\n", channel, domain, utm.Campaign, enrich.Path(page))

	channel, domain = enrich.Channel("https://www.google.co.uk/", page, "")
	fmt.Println(channel, domain)
	// Output:
	// email mail.google.com "launch week" /launch
	// search google.co.uk
}

func ExampleIPPolicy_Apply() {
	fmt.Println(enrich.IPAnonymize.Apply("203.0.113.42"))
	fmt.Println(enrich.IPAnonymize.Apply("2001:db8:1:2:3:4:5:6"))
	fmt.Printf("%q\n", enrich.IPDrop.Apply("203.0.113.42"))
	// Output:
	// 203.0.113.0
	// 2001:db8:1::
	// ""
}
