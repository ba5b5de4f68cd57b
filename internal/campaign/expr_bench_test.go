package campaign

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/contrailhq/contrail/internal/lead"
)

// BenchmarkConstraintEval is one constraint tested against an activity
// whose variables are already built (as for every campaign after the
// first that an activity is tested against).
func BenchmarkConstraintEval(b *testing.B) {
	x, err := NewExprs()
	if err != nil {
		b.Fatal(err)
	}
	e, probs := x.Compile("c", "event.properties.n == 5")
	if probs != nil {
		b.Fatal(probs)
	}
	a := &lead.Activity{Type: lead.ActTrack, Event: "E1", Time: time.Now(), Properties: json.RawMessage(`{"n":5,"plan":"pro"}`)}
	v := &vars{act: a}
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := e.Eval(v); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
