package report

import "fmt"

// Dim is a breakdown dimension of the reports.
type Dim uint8

// The dimensions. Entry page, referrer, channel, UTM and country are the
// session's: every event of a session is counted under the values its
// session started with. Device, browser and OS are the event's (a device
// does not change them); page and event are the event's own.
const (
	DimPage Dim = iota
	DimEntryPage
	DimExitPage
	DimReferrer
	DimChannel
	DimUTMSource
	DimUTMMedium
	DimUTMCampaign
	DimCountry
	DimDevice
	DimBrowser
	DimOS
	DimEvent
	// dimGoal holds the goals' conversions; it is not a query dimension.
	dimGoal
	numDims
)

var dimNames = [numDims]string{
	"page", "entry_page", "exit_page", "referrer", "channel", "utm_source", "utm_medium",
	"utm_campaign", "country", "device", "browser", "os", "event", "goal",
}

// String returns the dimension's API name.
func (d Dim) String() string {
	if d < numDims {
		return dimNames[d]
	}
	return fmt.Sprintf("dim(%d)", uint8(d))
}

// ParseDim returns the query dimension named s.
func ParseDim(s string) (Dim, bool) {
	for i, n := range dimNames[:dimGoal] {
		if n == s {
			return Dim(i), true
		}
	}
	return 0, false
}

// DimNames lists the query dimensions' names.
func DimNames() []string { return append([]string(nil), dimNames[:dimGoal]...) }

// sessionDim reports whether d takes its value from the session, so that
// session counts (sessions, bounces, duration) are kept per value.
func sessionDim(d Dim) bool {
	switch d {
	case DimEntryPage, DimReferrer, DimChannel, DimUTMSource, DimUTMMedium, DimUTMCampaign,
		DimCountry, DimDevice, DimBrowser, DimOS:
		return true
	}
	return false
}
