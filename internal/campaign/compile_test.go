package campaign_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/contrailhq/contrail/internal/campaign"
)

// The issue's example must be accepted as it is.
const issueExample = `{"name": "pricing visitors",
 "triggers": [{"type": "visits_web_page", "constraint": "event.properties.path == '/pricing'"}],
 "qualification": "once",
 "flow": [{"type": "change_score", "change": 10},
          {"type": "call_webhook", "url": "https://crm.example/hook", "body": "{\"lead\":\"{{lead.email}}\"}"}]}`

func TestIssueExampleCompiles(t *testing.T) {
	x, err := campaign.NewExprs()
	require.NoError(t, err)
	spec, err := campaign.Parse([]byte(issueExample))
	require.NoError(t, err)
	_, err = campaign.Compile(context.Background(), x, spec, campaign.CompileOptions{})
	require.NoError(t, err)
}

func TestValidationErrors(t *testing.T) {
	x, err := campaign.NewExprs()
	require.NoError(t, err)
	cases := []struct {
		name, doc string
		want      campaign.FieldError
	}{
		{"unknown field", `{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"change_score","change":1}],"colour":1}`,
			campaign.FieldError{Path: "colour", Line: 1, Column: 94, Message: `unknown field "colour"`}},
		{"bad json", "{\"name\": \"a\",\n \"triggers\": [}", campaign.FieldError{Line: 2}},
		{"unknown trigger", `{"name":"a","triggers":[{"type":"visits_page"}],"flow":[{"type":"change_score","change":1}]}`,
			campaign.FieldError{Path: "triggers[0].type"}},
		{"cel syntax", "name: a\ntriggers:\n  - type: visits_web_page\n    constraint: \"event.path ==\"\nflow:\n  - {type: change_score, change: 1}\n",
			campaign.FieldError{Path: "triggers[0].constraint", Line: 1, Column: 14}},
		{"cel type", `{"name":"a","triggers":[{"type":"lead_created","constraint":"1 + 2"}],"flow":[{"type":"change_score","change":1}]}`,
			campaign.FieldError{Path: "triggers[0].constraint"}},
		{"too costly", `{"name":"a","triggers":[{"type":"lead_created","constraint":"lead.lists.all(a, lead.lists.all(b, lead.lists.all(c, a + b + c != '')))"}],"flow":[{"type":"change_score","change":1}]}`,
			campaign.FieldError{Path: "triggers[0].constraint"}},
		{"unknown step", `{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"change_score","change":1},{"type":"teleport"}]}`,
			campaign.FieldError{Path: "flow[1].type"}},
		{"nested choice", `{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"choice","branches":[{"if":"lead.score >","flow":[]}]}]}`,
			campaign.FieldError{Path: "flow[0].branches[0].if", Line: 1}},
		{"webhook host token", `{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"call_webhook","url":"https://{{lead.email}}/x"}]}`,
			campaign.FieldError{Path: "flow[0].url"}},
		{"bad token", `{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"send_email","subject":"{{user.name}}","text":"x"}]}`,
			campaign.FieldError{Path: "flow[0].subject"}},
		{"once_per without period", `{"name":"a","qualification":"once_per","triggers":[{"type":"lead_created"}],"flow":[{"type":"change_score","change":1}]}`,
			campaign.FieldError{Path: "qualification_period"}},
		{"min_count without window", `{"name":"a","triggers":[{"type":"visits_web_page","min_count":2}],"flow":[{"type":"change_score","change":1}]}`,
			campaign.FieldError{Path: "triggers[0].within"}},
		{"wait without duration", `{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"wait"}]}`,
			campaign.FieldError{Path: "flow[0].duration"}},
		{"empty", `  `, campaign.FieldError{Message: "empty campaign"}},
		{"yaml type", "name: a\ntriggers:\n  - type: lead_created\nflow:\n  - type: change_score\n    change: ten\n",
			campaign.FieldError{Path: "flow[0].change", Line: 6, Column: 13, Message: "want a number, got string"}},
		{"json type", "{\"name\":\"a\",\"triggers\":[{\"type\":\"lead_created\"}],\n\"flow\":[{\"type\":\"change_score\",\"change\":\"ten\"}]}",
			campaign.FieldError{Path: "flow[0].change", Line: 2, Column: 41}},
		{"yaml unknown field", "name: a\ntriggers:\n  - type: lead_created\n    colour: red\nflow:\n  - {type: change_score, change: 1}\n",
			campaign.FieldError{Path: "triggers[0].colour", Line: 4, Column: 5, Message: `unknown field "colour"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec, err := campaign.Parse([]byte(c.doc))
			if err == nil {
				_, err = campaign.Compile(context.Background(), x, spec, campaign.CompileOptions{})
			}
			var ve *campaign.ValidationError
			require.True(t, errors.As(err, &ve), "want a validation error, got %v", err)
			require.NotEmpty(t, ve.Problems)
			p := ve.Problems[0]
			if c.want.Path != "" {
				assert.Equal(t, c.want.Path, p.Path, "%v", ve)
			}
			if c.want.Message != "" {
				assert.Equal(t, c.want.Message, p.Message)
			}
			if c.want.Line != 0 {
				assert.Equal(t, c.want.Line, p.Line, "%v", ve)
			}
			if c.want.Column != 0 {
				assert.Equal(t, c.want.Column, p.Column, "%v", ve)
			}
		})
	}
}

func TestPublishChecksWebhookHosts(t *testing.T) {
	x, err := campaign.NewExprs()
	require.NoError(t, err)
	spec, err := campaign.Parse([]byte(`{"name":"a","triggers":[{"type":"lead_created"}],"flow":[{"type":"change_score","change":1},{"type":"call_webhook","url":"http://127.0.0.1:9/x"}]}`))
	require.NoError(t, err)
	refuse := errors.New("a private address")
	_, err = campaign.Compile(context.Background(), x, spec, campaign.CompileOptions{CheckURL: func(context.Context, string) error { return refuse }})
	var ve *campaign.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "flow[1].url", ve.Problems[0].Path)
	assert.Contains(t, ve.Problems[0].Message, "a private address")
}
