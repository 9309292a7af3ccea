package zoo

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim"
)

func mustGenerate(t *testing.T, n int, seed uint64) *Zoo {
	t.Helper()
	z, err := Generate(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func mustYAML(t *testing.T, z *Zoo) []byte {
	t.Helper()
	b, err := z.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGenerateDeterministic: the same seed gives the same file, another seed another, and line
// k does not depend on how many lines the zoo has.
func TestGenerateDeterministic(t *testing.T) {
	a, b := mustYAML(t, mustGenerate(t, 24, 7)), mustYAML(t, mustGenerate(t, 24, 7))
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave two different zoos")
	}
	if c := mustYAML(t, mustGenerate(t, 24, 8)); bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same zoo")
	}
	small, big := mustGenerate(t, 10, 7), mustGenerate(t, 24, 7)
	if !reflect.DeepEqual(small.Entries, big.Entries[:10]) {
		t.Fatal("the first 10 lines of a 24-line zoo differ from a 10-line zoo of the same seed")
	}
}

func TestGenerateBadInput(t *testing.T) {
	for _, n := range []int{0, -1, MaxLines + 1} {
		if _, err := Generate(n, 1); err == nil || !strings.Contains(err.Error(), "lines must be within") {
			t.Errorf("Generate(%d): error %v", n, err)
		}
	}
}

// TestGenerateSpread: every family appears in both splits, both signs and every opsin appear,
// the modifiers appear, controls are neutral and the rest respond, codes are the zoo's own,
// and the notes give back family and split.
func TestGenerateSpread(t *testing.T) {
	const n = 48 // 24 pairs: 4 control pairs and 20 others, more than the 17 response families
	z := mustGenerate(t, n, 3)
	ref, err := sim.DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	fams := map[Split]map[Family]int{SplitTrain: {}, SplitHeldout: {}}
	signs, opsins, mods := map[sim.Sign]int{}, map[string]int{}, map[string]int{}
	codes := map[string]bool{}
	for k, e := range z.Entries {
		l := e.Line
		if l.Code != Code(3, k) || codes[l.Code] {
			t.Fatalf("line %d: code %q (duplicate %v)", k, l.Code, codes[l.Code])
		}
		codes[l.Code] = true
		if _, err := ref.Line(l.Code); err == nil {
			t.Fatalf("zoo code %s collides with the reference catalogue", l.Code)
		}
		want := SplitTrain
		if k%2 == 1 {
			want = SplitHeldout
			if z.Entries[k-1].Family != e.Family {
				t.Fatalf("lines %d and %d are a pair but of families %s and %s", k-1, k, z.Entries[k-1].Family, e.Family)
			}
		}
		if e.Split != want {
			t.Fatalf("line %d: split %s, want %s", k, e.Split, want)
		}
		if s, ok := SplitOf(l); !ok || s != e.Split {
			t.Fatalf("line %s: notes give split %q (%v), want %s: %q", l.Code, s, ok, e.Split, l.Notes)
		}
		if f, ok := FamilyOf(l); !ok || f != e.Family {
			t.Fatalf("line %s: notes give family %q (%v), want %s", l.Code, f, ok, e.Family)
		}
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		if l.Opsin == "none" || l.Sign == sim.NoOpsin {
			t.Fatalf("line %s has no opsin: every zoo line, controls included, expresses one", l.Code)
		}
		fams[e.Split][e.Family]++
		signs[l.Sign]++
		opsins[l.Opsin]++
		for _, m := range e.Modifiers {
			mods[m]++
		}
		for k, v := range l.Sources {
			if !strings.HasPrefix(v, "generated: optoloop zoo seed 3, line ") {
				t.Fatalf("line %s: source %s does not cite the generator: %q", l.Code, k, v)
			}
		}
		if e.Family == Control {
			if l.Response != sim.NeutralResponse() {
				t.Fatalf("control %s responds: %+v", l.Code, l.Response)
			}
		} else if l.Response == sim.NeutralResponse() || l.Response.OnsetLagS == 0 {
			t.Fatalf("line %s of family %s has a neutral response or no lag: %+v", l.Code, e.Family, l.Response)
		}
	}
	for s, m := range fams {
		for _, f := range Families() {
			if m[f] == 0 {
				t.Errorf("split %s has no line of family %s", s, f)
			}
		}
	}
	if signs[sim.Excitatory] == 0 || signs[sim.Inhibitory] == 0 {
		t.Errorf("signs: %v", signs)
	}
	if len(opsins) != 4 {
		t.Errorf("opsins: %v", opsins)
	}
	if mods["weak responders"] == 0 || mods["habituation"] == 0 {
		t.Errorf("modifiers: %v", mods)
	}
	// Six lines already hold a control in each split.
	six := mustGenerate(t, 6, 3)
	if six.Entries[4].Family != Control || six.Entries[5].Family != Control {
		t.Errorf("lines 4 and 5 of a zoo are %s and %s, want controls", six.Entries[4].Family, six.Entries[5].Family)
	}
}

// TestZooCatalogueRoundTrip: the YAML parses with the catalogue's own strict parser into the
// same lines, and merges over the embedded catalogue as --lines-file does.
func TestZooCatalogueRoundTrip(t *testing.T) {
	z := mustGenerate(t, 20, 11)
	b := mustYAML(t, z)
	cat, err := sim.ParseCatalogue(b)
	if err != nil {
		t.Fatalf("the catalogue parser refuses the zoo: %v", err)
	}
	if !reflect.DeepEqual(cat.Lines, z.Lines(SplitAll)) {
		t.Fatal("the zoo's lines changed through YAML")
	}
	path := filepath.Join(t.TempDir(), "zoo.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	merged, err := sim.LoadCatalogue(path)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := sim.DefaultCatalogue()
	if len(merged.Lines) != len(ref.Lines)+20 {
		t.Fatalf("merged catalogue holds %d lines, want %d", len(merged.Lines), len(ref.Lines)+20)
	}
	for _, code := range []string{"446", "73", "Z11-0", "Z11-19"} {
		if _, err := merged.Line(code); err != nil {
			t.Error(err)
		}
	}
	if got := z.Codes(SplitHeldout); len(got) != 10 || got[0] != "Z11-1" {
		t.Fatalf("held-out codes %v", got)
	}
}

// TestZooLinesRespond checks that the generated magnitudes are visible in the simulator: for
// one line of each response family (the training split of a 40-line zoo), the family's own
// measure moves in its direction by at least 25 % between no light and the family's light
// schedule, summed over the same 6 seeded animals of 100 s (head swing: its proxy by 15 %;
// steering: light timed to the swing rotates the worm by 2 rad/min or more, in the direction of
// steering_deg_s); controls do not change at all. The
// shallow-turn family is exempt from the size: turns of 20-60 deg barely change the heading
// against the baseline's looping (about 1.4 rad per 3 s), in this check's measures as in the
// worm's track.
func TestZooLinesRespond(t *testing.T) {
	const animals, secs = 6, 100
	z := mustGenerate(t, 40, 1)
	beh := sim.DefaultBehaviour()
	type measure struct{ rev, omega, odo, swing, curve, rot float64 }
	// run measures the line's animals under the light schedule; the pose-based measures (swing,
	// curving, rotation) only for the families that need them, and for both of a comparison.
	run := func(l sim.Line, light string) measure {
		var sum measure
		f, _ := FamilyOf(l)
		pose := f == HeadSwing || f == BiasReset || f == SteerToward || f == SteerAway
		mid := make([][2]float64, 25)
		for a := range animals {
			m, err := sim.NewModel(beh, l, 17.9, uint64(500+a), 0, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var rel [SwingFrames]float64
			prev, swing, prevSwing := 0.0, 0.0, 0.0
			var rot float64
			for i := range 3 * secs {
				on := false
				switch light {
				case "always":
					on = true
				case "pulsed": // 2 s on every 10 s
					on = i%30 < 6
				case "swing+", "swing-": // the head swings toward the positive / negative side
					on = (swing-prevSwing > 0) == (light == "swing+")
				}
				m.Advance(1.0/3, on)
				if !pose {
					continue
				}
				m.Midline(mid)
				b, h := arenas.BodyAngle(mid), arenas.HeadAngle(mid)
				rel[i%SwingFrames] = math.Remainder(h-b, 2*math.Pi)
				var mean float64
				for _, v := range rel {
					mean += v / SwingFrames
				}
				prevSwing, swing = swing, rel[i%SwingFrames]-mean
				if i > 0 && m.State() == sim.Forward {
					d := math.Remainder(b-prev, 2*math.Pi)
					rot += d
					sum.swing += math.Abs(swing)
				}
				prev = b
			}
			sum.rev += float64(m.Reversals() - m.EdgeReversals())
			sum.omega += float64(m.Omegas())
			sum.odo += m.Odometer()
			sum.curve += math.Abs(rot)
			sum.rot += rot
		}
		return sum
	}
	type check struct {
		light string
		f     func(measure) float64
		up    bool
	}
	rev := func(m measure) float64 { return m.rev }
	checks := map[Family]check{
		ReversalUp: {"always", rev, true}, ReversalDown: {"always", rev, false},
		OnsetReversal: {"pulsed", rev, true}, OffsetRebound: {"pulsed", rev, true},
		OmegaUp:   {"always", func(m measure) float64 { return m.omega }, true},
		SpeedUp:   {"always", func(m measure) float64 { return m.odo }, true},
		SpeedDown: {"always", func(m measure) float64 { return m.odo }, false},
		Pausing:   {"always", func(m measure) float64 { return m.odo }, false},
		BiasReset: {"always", func(m measure) float64 { return m.curve }, false},
		Pirouette: {"always", rev, true}, ReboundTurn: {"pulsed", rev, true},
		StraightRun: {"always", rev, false},
		FreezeSteer: {"always", func(m measure) float64 { return m.odo }, false},
	}
	seen := map[Family]bool{}
	for _, e := range z.Entries {
		if e.Split != SplitTrain || seen[e.Family] {
			continue
		}
		seen[e.Family] = true
		t.Run(string(e.Family), func(t *testing.T) {
			l := e.Line
			none := run(l, "none")
			switch e.Family {
			case Control:
				if got := run(l, "always"); got.rev != none.rev || got.odo != none.odo || got.omega != none.omega {
					t.Errorf("control %s changes under light: %+v vs %+v", l.Code, got, none)
				}
			case TurnUp:
			case HeadSwing:
				on := run(l, "always")
				// The proxy also holds tracking of the looping path, so it moves less than the
				// amplitude itself: 15 %.
				if r := on.swing / none.swing; math.Abs(math.Log(r)) < math.Log(1.15) {
					t.Errorf("line %s (head_swing_factor %v): swing %.2f -> %.2f", l.Code, l.Response.HeadSwingFactor, none.swing, on.swing)
				}
			case SteerToward, SteerAway:
				// Light while the head swings to one side against the other side: the
				// rotation differs with the sign of steering_deg_s.
				plus, minus := run(l, "swing+"), run(l, "swing-")
				d := (plus.rot - minus.rot) / animals / (secs / 60.0) // rad per minute
				t.Logf("line %s (steering %v deg/s): swing+ minus swing- %.2f rad/min", l.Code, l.Response.SteeringDegS, d)
				if math.Abs(d) < 2 || (d > 0) != (l.Response.SteeringDegS > 0) {
					t.Errorf("line %s (steering %v deg/s): phase-locked light rotates the worm by %.2f rad/min", l.Code, l.Response.SteeringDegS, d)
				}
			default:
				c := checks[e.Family]
				got := run(l, c.light)
				a, b := c.f(none), c.f(got)
				t.Logf("line %s %s: %.3g -> %.3g", l.Code, e.Family, a, b)
				if c.up && !(b >= 1.25*a) || !c.up && !(b <= a/1.25) {
					t.Errorf("line %s (%s, %s light): %.3g -> %.3g, want a change of >= 25 %% (up %v)", l.Code, e.Family, c.light, a, b, c.up)
				}
			}
		})
	}
	if len(seen) != len(Families()) {
		t.Fatalf("checked %d families of %d", len(seen), len(Families()))
	}
}
