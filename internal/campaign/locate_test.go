package campaign_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/campaign"
)

// Locate places each problem at its value in the document as written: a
// validation problem (which knows only its path), an expression's problem
// (whose own line and column count within the expression), a missing field
// (at its parent) and a syntax error (at its line, leading blank lines
// counted).
func TestLocate(t *testing.T) {
	x, err := campaign.NewExprs()
	require.NoError(t, err)
	compile := func(doc string) []campaign.FieldError {
		t.Helper()
		spec, err := campaign.Parse([]byte(doc))
		if err == nil {
			_, err = campaign.Compile(context.Background(), x, spec, campaign.CompileOptions{})
		}
		var ve *campaign.ValidationError
		require.True(t, errors.As(err, &ve), "want a validation error, got %v", err)
		campaign.Locate([]byte(doc), ve.Problems)
		return ve.Problems
	}
	at := func(line, col int) *campaign.Position { return &campaign.Position{Line: line, Column: col} }

	doc := "\n\nname: a\ntriggers:\n  - type: lead_created\nflow:\n  - type: change_score\n    change: 1\n  - type: teleport\n"
	p := compile(doc)
	require.Equal(t, "flow[1].type", p[0].Path)
	require.Equal(t, at(9, 5), p[0].At, "the key of the bad value, lines counted from the top")

	p = compile("name: a\ntriggers:\n  - type: visits_web_page\n    constraint: event.path ==\nflow:\n  - {type: change_score, change: 1}\n")
	require.Equal(t, "triggers[0].constraint", p[0].Path)
	require.Equal(t, at(4, 5), p[0].At)
	require.Positive(t, p[0].Column, "the expression's own column stays")

	p = compile("name: a\ntriggers:\n  - type: lead_created\nflow:\n  - type: wait\n")
	require.Equal(t, "flow[0].duration", p[0].Path)
	require.Equal(t, at(5, 5), p[0].At, "a missing field is placed at its step")

	p = compile("name: a\ntriggers: [\n")
	require.NotNil(t, p[0].At, "%+v", p[0])
	require.Equal(t, 2, p[0].At.Line, "the unclosed list")
}
