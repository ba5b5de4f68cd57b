package campaign

import (
	"encoding/json"
	"fmt"
	"html"
	"strings"
)

// Template is a text with tokens {{lead.x}}, {{event.x}} and {{run.x}}
// (a dotted path below the root), each replaced when a step runs. A token
// with nothing behind it renders empty.
type Template struct {
	parts []tmplPart
}

type tmplPart struct {
	lit  string
	root string // "" for a literal
	path string
}

// ParseTemplate reads a template; an unknown root or an unclosed token is
// an error.
func ParseTemplate(src string) (*Template, error) {
	t := &Template{}
	for src != "" {
		i := strings.Index(src, "{{")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: src})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: src[:i]})
		}
		j := strings.Index(src[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed token at %d", i)
		}
		tok := strings.TrimSpace(src[i+2 : i+j])
		root, path, _ := strings.Cut(tok, ".")
		switch root {
		case "lead", "event", "run":
		default:
			return nil, fmt.Errorf("token {{%s}}: want {{lead.x}}, {{event.x}} or {{run.x}}", tok)
		}
		if path == "" {
			return nil, fmt.Errorf("token {{%s}}: a field is required", tok)
		}
		t.parts = append(t.parts, tmplPart{root: root, path: path})
		src = src[i+j+2:]
	}
	return t, nil
}

// Tokens resolves a token's root and path to its text.
type Tokens interface {
	Token(root, path string) (string, bool)
}

// Escapes for the contexts a template renders into.
var (
	// EscapeNone leaves values as they are.
	EscapeNone = func(s string) string { return s }
	// EscapeHTML makes values safe in HTML text and attributes.
	EscapeHTML = html.EscapeString
	// EscapeJSON makes values safe inside a JSON string.
	EscapeJSON = func(s string) string {
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	}
)

// Render returns the text with its tokens replaced, each escaped.
func (t *Template) Render(tok Tokens, escape func(string) string) string {
	if t == nil {
		return ""
	}
	if len(t.parts) == 1 && t.parts[0].root == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.root == "" {
			b.WriteString(p.lit)
			continue
		}
		if v, ok := tok.Token(p.root, p.path); ok {
			b.WriteString(escape(v))
		}
	}
	return b.String()
}
