package enrich

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/ua-parser/uap-go/uaparser"
	"go.yaml.in/yaml/v3"
)

// The crawler patterns are those of uap-core, the user-agent database that
// the ua-parser projects share and keep up to date, as shipped inside
// github.com/ua-parser/uap-go: the device parsers whose device family is
// "Spider". Only those few patterns are compiled; uap-go's own parser would
// compile about a thousand regular expressions per instance (10 MB, ~100 ms)
// and take close to a millisecond a string. (github.com/x-way/crawlerdetect,
// the Go port of CrawlerDetect, would be the other choice, but the module
// proxy this project builds with does not serve it.)

// crawlerPattern is a compiled crawler pattern with its prefilter.
type crawlerPattern struct {
	re *regexp.Regexp
	// pre passes every user agent that re matches, and few others; nil
	// passes all. Most user agents contain none of the strings it looks
	// for, which it tells in a few microseconds, where the regular
	// expressions take ~200 µs: Go's regexp runs uap-core's
	// "^.{0,100}(bot|crawl|...)" in its NFA.
	pre *prefilter
}

// crawlers returns the compiled crawler patterns, compiling them on the first
// call. The result is read-only.
var crawlers = sync.OnceValue(func() []crawlerPattern {
	ps, err := compileCrawlers(uaparser.DefinitionYaml)
	if err != nil {
		// The data is embedded in a pinned dependency and the tests compile
		// it, so this is a build defect, not a run-time condition.
		panic(err)
	}
	return ps
})

// compileCrawlers compiles the "Spider" device parsers of a uap-core
// regexes.yaml document.
func compileCrawlers(doc []byte) ([]crawlerPattern, error) {
	var defs struct {
		Device []struct {
			Regex  string `yaml:"regex"`
			Flag   string `yaml:"regex_flag"`
			Family string `yaml:"device_replacement"`
		} `yaml:"device_parsers"`
	}
	if err := yaml.Unmarshal(doc, &defs); err != nil {
		return nil, fmt.Errorf("reading uap-core regexes: %w", err)
	}
	var ps []crawlerPattern
	for _, d := range defs.Device {
		if d.Family != "Spider" {
			continue
		}
		expr := d.Regex
		if d.Flag != "" {
			expr = "(?" + d.Flag + ")" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("compiling uap-core crawler pattern %q: %w", d.Regex, err)
		}
		// regexp.Compile accepted expr, so syntax.Parse does too.
		tree, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			return nil, fmt.Errorf("parsing uap-core crawler pattern %q: %w", d.Regex, err)
		}
		ps = append(ps, crawlerPattern{re: re, pre: newPrefilter(tree)})
	}
	if len(ps) == 0 {
		return nil, errors.New("uap-core regexes have no crawler (Spider) patterns")
	}
	return ps, nil
}

// prefilter is a necessary condition for a regular expression to match a
// text, in terms of the substrings the text contains, ignoring ASCII case.
// Exactly one of its fields is set.
type prefilter struct {
	lits [][]byte     // the text contains one of these (lower case)
	and  []*prefilter // the text passes all of these
	or   []*prefilter // the text passes one of these
}

// newPrefilter returns a prefilter for re, or nil when it finds none. It is
// conservative: it gives up on anything but literals, small character
// classes, concatenations, alternations, groups and repetitions of at least
// one, and a nil part of an alternation makes the alternation nil.
func newPrefilter(re *syntax.Regexp) *prefilter {
	if set := exactSet(re); set != nil && minLen(set) > 0 {
		return &prefilter{lits: set}
	}
	switch re.Op {
	case syntax.OpCapture, syntax.OpPlus:
		return newPrefilter(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return newPrefilter(re.Sub[0])
		}
	case syntax.OpConcat:
		// Every part must match. A run of parts whose matches are known
		// exactly spells its own strings: "b" then "ot|ubing" is "bot" or
		// "bubing".
		var and []*prefilter
		var run [][]byte
		endRun := func() {
			if run != nil && minLen(run) > 0 {
				and = append(and, &prefilter{lits: run})
			}
			run = nil
		}
		for _, sub := range re.Sub {
			if set := exactSet(sub); set != nil {
				if p := product(run, set); p != nil {
					run = p
					continue
				}
				endRun()
				run = set
				continue
			}
			endRun()
			if p := newPrefilter(sub); p != nil {
				and = append(and, p)
			}
		}
		endRun()
		switch len(and) {
		case 0:
			return nil
		case 1:
			return and[0]
		}
		return &prefilter{and: and}
	case syntax.OpAlternate:
		var or []*prefilter
		for _, sub := range re.Sub {
			p := newPrefilter(sub)
			if p == nil {
				return nil
			}
			or = append(or, p)
		}
		return &prefilter{or: or}
	}
	return nil
}

// pass reports whether the lower-case text s passes p.
func (p *prefilter) pass(s []byte) bool {
	switch {
	case p.lits != nil:
		for _, l := range p.lits {
			if bytes.Contains(s, l) {
				return true
			}
		}
		return false
	case p.and != nil:
		for _, q := range p.and {
			if !q.pass(s) {
				return false
			}
		}
		return true
	}
	for _, q := range p.or {
		if q.pass(s) {
			return true
		}
	}
	return false
}

// String describes p, for tests: {a,b} for strings, and(...) and or(...).
func (p *prefilter) String() string {
	if p == nil {
		return "<nil>"
	}
	var parts []string
	switch {
	case p.lits != nil:
		for _, l := range p.lits {
			parts = append(parts, string(l))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case p.and != nil:
		for _, q := range p.and {
			parts = append(parts, q.String())
		}
		return "and(" + strings.Join(parts, " ") + ")"
	}
	for _, q := range p.or {
		parts = append(parts, q.String())
	}
	return "or(" + strings.Join(parts, " ") + ")"
}

// maxExactSet bounds the sets that exactSet and product build.
const maxExactSet = 1024

// exactSet returns the lower-case ASCII strings that re matches, ignoring
// ASCII case, when they are few; else nil.
func exactSet(re *syntax.Regexp) [][]byte {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return [][]byte{{}}
	case syntax.OpLiteral:
		lit := make([]byte, 0, len(re.Rune))
		for _, r := range re.Rune {
			if r >= utf8.RuneSelf {
				// Case folding is not ASCII lower-casing beyond ASCII.
				return nil
			}
			lit = append(lit, byte(unicode.ToLower(r)))
		}
		return [][]byte{lit}
	case syntax.OpCharClass:
		var set [][]byte
		seen := map[byte]bool{}
		for i := 0; i < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi >= utf8.RuneSelf || hi-lo > 16 {
				return nil
			}
			for r := lo; r <= hi; r++ {
				c := byte(unicode.ToLower(r))
				if !seen[c] {
					seen[c] = true
					set = append(set, []byte{c})
				}
			}
		}
		if len(set) == 0 || len(set) > 16 {
			return nil
		}
		return set
	case syntax.OpCapture:
		return exactSet(re.Sub[0])
	case syntax.OpQuest:
		if set := exactSet(re.Sub[0]); set != nil && len(set) < maxExactSet {
			return append(set, []byte{})
		}
	case syntax.OpConcat:
		set := [][]byte{{}}
		for _, sub := range re.Sub {
			if set = product(set, exactSet(sub)); set == nil {
				return nil
			}
		}
		return set
	case syntax.OpAlternate:
		var all [][]byte
		for _, sub := range re.Sub {
			set := exactSet(sub)
			if set == nil || len(all)+len(set) > maxExactSet {
				return nil
			}
			all = append(all, set...)
		}
		return all
	}
	return nil
}

// product returns every string of a followed by one of b; a nil a is {""}.
// It returns nil when b is nil or the product is too large.
func product(a, b [][]byte) [][]byte {
	if a == nil {
		return b
	}
	if b == nil || len(a)*len(b) > maxExactSet {
		return nil
	}
	out := make([][]byte, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, append(append(make([]byte, 0, len(x)+len(y)), x...), y...))
		}
	}
	return out
}

// minLen returns the length of the shortest of lits.
func minLen(lits [][]byte) int {
	n := len(lits[0])
	for _, l := range lits[1:] {
		n = min(n, len(l))
	}
	return n
}

// isCrawler reports whether a uap-core crawler pattern matches ua.
func isCrawler(ua string) bool {
	// A user agent with non-ASCII bytes, or longer than Parse looks at,
	// skips the prefilters: rare, and still correct.
	var buf [maxUALen]byte
	lower := buf[:0]
	ascii := len(ua) <= len(buf)
	for i := 0; ascii && i < len(ua); i++ {
		c := ua[i]
		if c >= utf8.RuneSelf {
			ascii = false
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	for _, p := range crawlers() {
		if ascii && p.pre != nil && !p.pre.pass(lower) {
			continue
		}
		if p.re.MatchString(ua) {
			return true
		}
	}
	return false
}
