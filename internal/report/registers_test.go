package report

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/axiomhq/hyperloglog"
	"github.com/stretchr/testify/require"
)

// randomSketch is a sketch of n random visitors: sparse while small, as
// the rollups store them, and with some keys still in the tmp set when
// flush is false.
func randomSketch(tb testing.TB, rng *rand.Rand, n int, dense, flush bool) []byte {
	tb.Helper()
	sk := newSketch()
	if dense {
		sk = hyperloglog.NewNoSparse()
	}
	for range n {
		sk.InsertHash(rng.Uint64())
	}
	if flush {
		sk.Estimate() // moves the tmp set into the compressed list
	}
	b, err := sk.MarshalBinary()
	require.NoError(tb, err)
	return b
}

// TestRegistersMergeAsTheLibrary merges mixes of sparse and dense encoded
// sketches into registers and into a library sketch, and requires the same
// registers (so the same estimate).
func TestRegistersMergeAsTheLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 40 {
		var r registers
		want := hyperloglog.NewNoSparse()
		for range 1 + rng.IntN(12) {
			n := []int{0, 1, 3, 50, 200, 3000, 20000}[rng.IntN(7)]
			b := randomSketch(t, rng, n, rng.IntN(4) == 0, rng.IntN(2) == 0)
			require.NoError(t, r.mergeEncoded(b), "round %d", round)
			sk, err := decodeSketch(b)
			require.NoError(t, err)
			require.NoError(t, want.Merge(sk))
		}
		wantEnc, err := want.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, wantEnc[8:], r[:], "round %d: registers", round)
		require.Equal(t, int64(want.Estimate()), r.estimate(), "round %d", round)
	}
}

// TestRegistersMergeDense checks the word-wise maximum against the obvious
// loop, over every pair of valid register values.
func TestRegistersMergeDense(t *testing.T) {
	var a, b registers
	for i := range a {
		a[i], b[i] = uint8(i%(maxRho+1)), uint8((i/(maxRho+1))%(maxRho+1))
	}
	want := a
	for i := range want {
		want[i] = max(want[i], b[i])
	}
	a.merge(&b)
	require.Equal(t, want, a)
}

// TestRegistersRejectBadSketches: what the library refuses, the registers
// refuse too, with the library's error.
func TestRegistersRejectBadSketches(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sparse := randomSketch(t, rng, 40, false, true)
	tmp := randomSketch(t, rng, 40, false, false)
	dense := randomSketch(t, rng, 100, true, false)
	edit := func(b []byte, fn func([]byte) []byte) []byte { return fn(append([]byte(nil), b...)) }
	cases := map[string][]byte{
		"dense register too high": edit(dense, func(b []byte) []byte { b[100] = maxRho + 1; return b }),
		"dense register 0x80":     edit(dense, func(b []byte) []byte { b[9] = 0x80; return b }),
		"dense too short":         dense[:len(dense)-1],
		"dense trailing byte":     append(append([]byte(nil), dense...), 0),
		"bad header byte 3":       edit(sparse, func(b []byte) []byte { b[3] = 2; return b }),
		"sparse list truncated":   sparse[:len(sparse)-1],
		"sparse count wrong":      edit(sparse, func(b []byte) []byte { b[8+3]++; return b }),
		"sparse last wrong":       edit(sparse, func(b []byte) []byte { b[8+7]++; return b }),
		"tmp set too large":       edit(tmp, func(b []byte) []byte { b[4] = 0xff; return b }),
		"short header":            sparse[:6],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var r registers
			err := r.mergeEncoded(b)
			require.Error(t, err)
			libErr := new(hyperloglog.Sketch).UnmarshalBinary(b)
			require.Error(t, libErr, "the library accepts it")
			for _, sentinel := range []error{hyperloglog.ErrorInvalidData, hyperloglog.ErrorTooShort} {
				if errors.Is(libErr, sentinel) {
					require.True(t, errors.Is(err, sentinel) || errors.Is(err, hyperloglog.ErrorInvalidData), "%v vs the library's %v", err, libErr)
				}
			}
		})
	}
}

// BenchmarkRegistersMerge is the cost of merging a stored sketch into a
// query's result, against decoding it and merging it with the library as
// queries did before.
func BenchmarkRegistersMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		name  string
		n     int
		dense bool
	}{{"sparse-20", 20, false}, {"sparse-200", 200, false}, {"dense", 20000, true}} {
		enc := randomSketch(b, rng, c.n, c.dense, true)
		b.Run(c.name+"/registers", func(b *testing.B) {
			var r registers
			b.ReportAllocs()
			for b.Loop() {
				if err := r.mergeEncoded(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/library", func(b *testing.B) {
			dst := hyperloglog.NewNoSparse()
			b.ReportAllocs()
			for b.Loop() {
				sk, err := decodeSketch(enc)
				if err != nil {
					b.Fatal(err)
				}
				if err := dst.Merge(sk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
