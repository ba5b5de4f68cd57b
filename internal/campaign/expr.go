package campaign

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// Cost bounds of an expression. The estimate assumes strings of up to
// maxStringSize characters and collections of up to maxCollectionSize
// items (an activity's properties are at most 4 KiB); an expression whose
// worst case is over maxEstimatedCost is refused at publish. An expression
// that loops (its worst case is over trackedCost) also runs with a cost
// limit, since a lead's traits may hold more items than the estimate
// assumed; a simple comparison runs without the tracker, which would
// double its cost.
const (
	maxStringSize     = 4096
	maxCollectionSize = 256
	maxEstimatedCost  = 100_000
	maxRuntimeCost    = 1_000_000
	trackedCost       = 1_000
	maxExprLen        = 2048
)

// Exprs compiles the campaigns' expressions: CEL over the variables
// event (the activity), lead (the profile) and run (the run's tokens and
// state). It is safe for concurrent use.
type Exprs struct {
	env *cel.Env
}

// NewExprs returns the expression compiler.
func NewExprs() (*Exprs, error) {
	env, err := cel.NewEnv(
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("lead", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("run", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
	)
	if err != nil {
		return nil, fmt.Errorf("building the expression environment: %w", err)
	}
	return &Exprs{env: env}, nil
}

// Expr is a compiled boolean expression.
type Expr struct {
	src string
	prg cel.Program
}

// Source returns the expression as written.
func (x *Expr) Source() string { return x.src }

// Compile checks src and returns it ready to run, or the problems found,
// with their line and column within src.
func (c *Exprs) Compile(path, src string) (*Expr, []FieldError) {
	if len(src) > maxExprLen {
		return nil, []FieldError{{Path: path, Message: fmt.Sprintf("expression longer than %d characters", maxExprLen)}}
	}
	ast, iss := c.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []FieldError
		for _, e := range iss.Errors() {
			out = append(out, FieldError{Path: path, Message: e.Message, Line: e.Location.Line(), Column: e.Location.Column() + 1})
		}
		return nil, out
	}
	if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, []FieldError{{Path: path, Message: fmt.Sprintf("expression gives %s, want a bool", t)}}
	}
	est, err := c.env.EstimateCost(ast, sizeBounds{})
	if err != nil {
		return nil, []FieldError{{Path: path, Message: "estimating the cost: " + err.Error()}}
	}
	if est.Max > maxEstimatedCost {
		return nil, []FieldError{{Path: path, Message: fmt.Sprintf("expression too costly: worst case %d, limit %d", est.Max, maxEstimatedCost)}}
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if est.Max > trackedCost {
		opts = append(opts, cel.CostLimit(maxRuntimeCost))
	}
	prg, err := c.env.Program(ast, opts...)
	if err != nil {
		return nil, []FieldError{{Path: path, Message: err.Error()}}
	}
	return &Expr{src: src, prg: prg}, nil
}

// ErrNotBool means an expression gave something other than a bool.
var ErrNotBool = errors.New("expression did not give a bool")

// Eval runs the expression. A missing key (a trait the lead does not
// have, say) makes it false rather than an error, as a marketer expects of
// "lead.traits.plan == 'pro'".
func (x *Expr) Eval(vars interpreter.Activation) (bool, error) {
	out, _, err := x.prg.Eval(vars)
	if err != nil {
		if isMissingKey(err) {
			return false, nil
		}
		return false, fmt.Errorf("evaluating %q: %w", x.src, err)
	}
	b, ok := out.(types.Bool)
	if !ok {
		if types.IsError(out) {
			return false, fmt.Errorf("evaluating %q: %v", x.src, out)
		}
		return false, fmt.Errorf("evaluating %q: %w (got %s)", x.src, ErrNotBool, typeName(out))
	}
	return bool(b), nil
}

func typeName(v ref.Val) string { return fmt.Sprint(v.Type()) }

// isMissingKey reports an evaluation error of a key or field not present.
func isMissingKey(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such key") || strings.Contains(s, "no such attribute")
}

// sizeBounds gives the cost estimate sizes for the inputs it cannot know.
type sizeBounds struct{}

func (sizeBounds) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if t := n.Type(); t != nil && t.IsExactType(types.StringType) {
		return &checker.SizeEstimate{Min: 0, Max: maxStringSize}
	}
	return &checker.SizeEstimate{Min: 0, Max: maxCollectionSize}
}

func (sizeBounds) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}
