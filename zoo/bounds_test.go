package zoo

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/arenas/sim"
)

// zooCatalogue is the embedded catalogue with the zoo of n lines of seed merged over it.
func zooCatalogue(t *testing.T, n int, seed uint64) (*Zoo, *sim.Catalogue) {
	t.Helper()
	z := mustGenerate(t, n, seed)
	cat, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	cat.Merge(z.Catalogue())
	return z, cat
}

func policies(t *testing.T, names ...string) []HandPolicy {
	t.Helper()
	var out []HandPolicy
	for _, n := range names {
		i := slices.IndexFunc(HandFamily(), func(p HandPolicy) bool { return p.Name == n })
		if i < 0 {
			t.Fatalf("no hand policy %s", n)
		}
		out = append(out, HandFamily()[i])
	}
	return out
}

// TestBoundsSelectionAndEvaluationDiffer runs the bounds of a no-effect control line, on which
// light changes nothing, so that every episode's result is its animal's: all policies score
// the same on the selection episodes (the same animals), and the chosen policy's evaluation
// episodes are other animals (their closest approaches differ from the selection's, and from
// the no-light and random-light evaluation episodes'). The bounds do not depend on Parallel or on
// the other lines bounded with them, and they repeat exactly.
func TestBoundsSelectionAndEvaluationDiffer(t *testing.T) {
	z, cat := zooCatalogue(t, 6, 5)
	control := z.Entries[4].Line.Code
	if z.Entries[4].Family != Control {
		t.Fatalf("line 4 is %s", z.Entries[4].Family)
	}
	ev := DefaultEvaluate()
	ev.EpisodesPerCondition, ev.EpisodeSeconds = 4, 20
	cfg := BoundsConfig{Catalogue: cat, Lines: []string{control}, Evaluate: ev, Seed: 9, NoRender: true, Parallel: 1,
		Policies: policies(t, "hold-away+0", "pulse1s-toward+0.8")}
	bs, err := Bounds(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := bs[0]
	sel := b.Selection
	if len(sel) != 2 || !reflect.DeepEqual(sel[0].ClosestCM, sel[1].ClosestCM) {
		t.Fatalf("selection on a control line differs between policies: %+v", sel)
	}
	if b.Best.Name != "hold-away+0" {
		t.Fatalf("chose %s among equals, want the first", b.Best.Name)
	}
	for name, s := range map[string][]float64{"selection": sel[0].ClosestCM, "none": b.None.ClosestCM, "random": b.Random.ClosestCM} {
		for i := range s {
			if s[i] == b.Hand.ClosestCM[i] {
				t.Errorf("evaluation episode %d of the chosen policy has the %s episode's result %v: the same animal", i, name, s[i])
			}
		}
	}
	if b.Hand.N != 4 || b.None.N != 4 || b.Random.N != 4 || b.Hand.LightFraction == 0 || b.RandomRate != b.Hand.LightFraction {
		t.Fatalf("evaluation: %+v", b)
	}
	cfg.Parallel = 2
	cfg.Lines = []string{z.Entries[0].Line.Code, control}
	again, err := Bounds(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again[1], b) {
		t.Fatalf("bounds changed with parallel and other lines:\n%+v\n%+v", again[1], b)
	}
}

// TestBoundsPicksAndBeatsNone: on a generated line whose light erases the looping bias (a
// strongly drivable site), the better of two policies is chosen on the selection episodes and
// beats no light on fresh episodes (p < 0.05, the report's test), at 8 episodes of 180 s.
func TestBoundsPicksAndBeatsNone(t *testing.T) {
	z, cat := zooCatalogue(t, 12, 1)
	i := slices.IndexFunc(z.Entries, func(e Entry) bool { return e.Family == BiasReset })
	if i < 0 {
		t.Fatal("no bias-reset line")
	}
	line := z.Entries[i].Line.Code
	ev := DefaultEvaluate()
	ev.EpisodesPerCondition, ev.EpisodeSeconds = 8, 180
	bs, err := Bounds(context.Background(), BoundsConfig{Catalogue: cat, Lines: []string{line}, Evaluate: ev, Seed: 2, NoRender: true,
		Policies: policies(t, "hold-away+0.5", "pulse1s-toward+0.8")})
	if err != nil {
		t.Fatal(err)
	}
	b := bs[0]
	for _, s := range b.Selection {
		t.Logf("selection %-26s %.2f cm (light %.2f)", s.Policy, s.MeanCM, s.LightFraction)
		if s.MeanCM < b.Selection[slices.IndexFunc(b.Selection, func(x Score) bool { return x.Policy == b.Best.Name })].MeanCM {
			t.Errorf("chose %s, but %s scored lower", b.Best.Name, s.Policy)
		}
	}
	t.Logf("line %s: %s %.2f cm, none %.2f, random %.2f (p %.2g, %.2g)", line, b.Best.Name, b.Hand.Mean, b.None.Mean, b.Random.Mean, b.PHandVsNone, b.PHandVsRandom)
	if !b.BeatsNone(0.05) {
		t.Fatalf("the best hand policy does not beat no light on %s", line)
	}
}

func TestBoundsBadInput(t *testing.T) {
	_, cat := zooCatalogue(t, 2, 1)
	ev := DefaultEvaluate()
	bad := ev
	bad.EpisodesPerCondition = 0
	tests := []struct {
		cfg  BoundsConfig
		want string
	}{
		{BoundsConfig{Lines: []string{"446"}, Evaluate: ev}, "no line catalogue"},
		{BoundsConfig{Catalogue: cat, Evaluate: ev}, "no lines"},
		{BoundsConfig{Catalogue: cat, Lines: []string{"999"}, Evaluate: ev}, `unknown line "999"`},
		{BoundsConfig{Catalogue: cat, Lines: []string{"446", "446"}, Evaluate: ev}, "twice"},
		{BoundsConfig{Catalogue: cat, Lines: []string{"446"}, Evaluate: bad}, "evaluate.episodes_per_condition"},
		{BoundsConfig{Catalogue: cat, Lines: []string{"446"}, Evaluate: ev, Policies: []HandPolicy{{Name: "x"}}}, "trigger"},
	}
	for _, tt := range tests {
		if _, err := Bounds(context.Background(), tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want one containing %q", err, tt.want)
		}
	}
}
