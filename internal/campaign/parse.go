package campaign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a campaign in JSON or YAML (JSON is YAML too) into a Spec,
// rejecting unknown fields and wrong types with the path, line and column
// of the offending value as the author wrote it. It does not validate;
// see Compile.
func Parse(data []byte) (Spec, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return Spec{}, problem(FieldError{Message: "empty campaign"})
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if data[0] == '{' { // broken JSON: its own error says where
			var v any
			return Spec{}, problem(jsonProblem(data, json.Unmarshal(data, &v)))
		}
		return Spec{}, problem(yamlProblem(err))
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return Spec{}, problem(FieldError{Message: "a campaign is an object (a YAML mapping)", Line: 1, Column: 1})
	}
	var m sourceMap
	if err := m.encode(doc.Content[0], ""); err != nil {
		return Spec{}, problem(FieldError{Message: err.Error()})
	}
	dec := json.NewDecoder(bytes.NewReader(m.out.Bytes()))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return Spec{}, problem(m.problem(err, dec.InputOffset()))
	}
	return s, nil
}

func problem(p FieldError) error { return &ValidationError{Problems: []FieldError{p}} }

// sourceMap is a document re-encoded as JSON, with where each value came
// from: its path and its place in the source.
type sourceMap struct {
	out   bytes.Buffer
	marks []mark
}

type mark struct {
	start, end   int // the value's bytes in out
	path         string
	line, column int
}

// encode writes n as JSON under path.
func (m *sourceMap) encode(n *yaml.Node, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	start := m.out.Len()
	switch n.Kind {
	case yaml.MappingNode:
		m.out.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				m.out.WriteByte(',')
			}
			k := n.Content[i].Value
			b, _ := json.Marshal(k)
			keyStart := m.out.Len()
			m.out.Write(b)
			m.marks = append(m.marks, mark{start: keyStart, end: m.out.Len(), path: join(path, k), line: n.Content[i].Line, column: n.Content[i].Column})
			m.out.WriteByte(':')
			if err := m.encode(n.Content[i+1], join(path, k)); err != nil {
				return err
			}
		}
		m.out.WriteByte('}')
	case yaml.SequenceNode:
		m.out.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				m.out.WriteByte(',')
			}
			if err := m.encode(c, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		m.out.WriteByte(']')
	case yaml.ScalarNode:
		m.out.Write(scalarJSON(n))
	default:
		return fmt.Errorf("line %d: unsupported YAML node", n.Line)
	}
	m.marks = append(m.marks, mark{start: start, end: m.out.Len(), path: path, line: n.Line, column: n.Column})
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalarJSON encodes a YAML scalar as JSON by its resolved tag.
func scalarJSON(n *yaml.Node) []byte {
	switch n.ShortTag() {
	case "!!null":
		return []byte("null")
	case "!!bool":
		if b, err := strconv.ParseBool(n.Value); err == nil {
			return []byte(strconv.FormatBool(b))
		}
	case "!!int":
		if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
			return []byte(strconv.FormatInt(i, 10))
		}
	case "!!float":
		if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return []byte(strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	b, _ := json.Marshal(n.Value)
	return b
}

// problem turns a decoding error into a problem at the source of the value
// it is about.
func (m *sourceMap) problem(err error, offset int64) FieldError {
	p := FieldError{Message: err.Error()}
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		offset = te.Offset
		p.Message = fmt.Sprintf("want %s, got %s", jsonType(te.Type.String()), te.Value)
		if mk, ok := m.innermostEnding(int(offset)); ok {
			p.Path, p.Line, p.Column = mk.path, mk.line, mk.column
		}
		return p
	case strings.HasPrefix(p.Message, "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(p.Message, "json: unknown field "), `"`)
		p.Message = fmt.Sprintf("unknown field %q", name)
		// The decoder stopped just after the field's name.
		if mk, ok := m.keyBefore(int(offset), name); ok {
			p.Path, p.Line, p.Column = mk.path, mk.line, mk.column
		}
		return p
	}
	p.Message = strings.TrimPrefix(p.Message, "json: ")
	return p
}

// innermostEnding returns the smallest value that ends at offset.
func (m *sourceMap) innermostEnding(offset int) (mark, bool) {
	best, found := mark{}, false
	for _, mk := range m.marks {
		if mk.end == offset && (!found || mk.end-mk.start < best.end-best.start) {
			best, found = mk, true
		}
	}
	return best, found
}

// keyBefore returns the last key named name that ends at or before offset.
func (m *sourceMap) keyBefore(offset int, name string) (mark, bool) {
	keys := make([]mark, 0, 4)
	for _, mk := range m.marks {
		if mk.end <= offset && (mk.path == name || strings.HasSuffix(mk.path, "."+name)) && m.out.Bytes()[mk.start] == '"' && mk.end-mk.start == len(strconv.Quote(name)) {
			keys = append(keys, mk)
		}
	}
	if len(keys) == 0 {
		return mark{}, false
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].end < keys[j].end })
	return keys[len(keys)-1], true
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "campaign."):
		return "an object"
	}
	return goType
}

// Locate sets the At of each problem of a campaign parsed from src: the
// line and column of the value at its path, or of its nearest parent that
// src holds. A syntax error without a path is placed at its own line.
// Problems src cannot place keep At nil.
func Locate(src []byte, problems []FieldError) {
	var doc yaml.Node
	var m sourceMap
	if yaml.Unmarshal(bytes.TrimSpace(src), &doc) == nil && len(doc.Content) == 1 {
		if m.encode(doc.Content[0], "") != nil {
			m.marks = nil
		}
	}
	// TrimSpace dropped the leading lines Parse did not see either; count
	// them back so that lines are the document's.
	skipped := bytes.Count(src[:len(src)-len(bytes.TrimLeft(src, " \t\r\n"))], []byte("\n"))
	for i := range problems {
		p := &problems[i]
		if p.Path == "" {
			if p.Line > 0 {
				p.At = &Position{Line: p.Line + skipped, Column: p.Column}
			}
			continue
		}
		for path := p.Path; path != ""; path = parentPath(path) {
			if mk, ok := m.first(path); ok {
				p.At = &Position{Line: mk.line + skipped, Column: mk.column}
				break
			}
		}
	}
}

// first returns the first mark of path: its key when it has one.
func (m *sourceMap) first(path string) (mark, bool) {
	for _, mk := range m.marks {
		if mk.path == path {
			return mk, true
		}
	}
	return mark{}, false
}

// parentPath drops the last element of a path: "flow[1].url" → "flow[1]"
// → "flow" → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
