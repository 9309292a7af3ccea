package zoo

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/optoloop/optoloop/arenas/sim"
)

// MaxLines bounds the size of one zoo.
const MaxLines = 1000

// Family is the kind of light response a generated line has: one effect of the simulator's
// response space alone, a combination of effects, or none (a negative control).
type Family string

// The families of the zoo. Single effects first, then combinations, then the control.
const (
	ReversalUp    Family = "reversal-up"    // reversal_rate_factor 3-8
	ReversalDown  Family = "reversal-down"  // reversal_rate_factor 0.05-0.3
	TurnUp        Family = "turn-up"        // turn_rate_factor 10-30
	OnsetReversal Family = "onset-reversal" // reversal_at_onset 0.4-0.9
	OffsetRebound Family = "offset-rebound" // reversal_at_offset 0.4-0.9 (a rebound at light off)
	OmegaUp       Family = "omega-up"       // omega_factor 2-2.8
	SpeedUp       Family = "speed-up"       // speed_factor 1.3-1.8
	SpeedDown     Family = "speed-down"     // speed_factor 0.05-0.5
	Pausing       Family = "pausing"        // pause_rate_factor 8-25
	HeadSwing     Family = "head-swing"     // head_swing_factor 0.2-0.5 or 1.5-2
	SteerToward   Family = "steer-head"     // steering_deg_s 30-90: toward the swung head's side (lags <= 0.4 and 0.5 s)
	SteerAway     Family = "steer-counter"  // steering_deg_s -90..-30: away from it
	BiasReset     Family = "bias-reset"     // bias_reset_per_s 2-20
	Pirouette     Family = "pirouette"      // reversals, omega share and onset reversals up
	ReboundTurn   Family = "rebound-turn"   // shallow turns, reversals and offset rebound up
	StraightRun   Family = "straight-run"   // faster, fewer reversals, bias erased, steering (AIY-like)
	FreezeSteer   Family = "freeze-steer"   // near paralysis, bias erased, flat head, steering
	Control       Family = "control"        // an opsin line whose light changes nothing
)

// Families returns every family, the control last.
func Families() []Family {
	return []Family{ReversalUp, ReversalDown, TurnUp, OnsetReversal, OffsetRebound, OmegaUp, SpeedUp, SpeedDown,
		Pausing, HeadSwing, SteerToward, SteerAway, BiasReset, Pirouette, ReboundTurn, StraightRun, FreezeSteer, Control}
}

// Split is the half of a zoo a line belongs to: settings are chosen on the training split and
// judged on the held-out one.
type Split string

// The splits; SplitAll selects both.
const (
	SplitTrain   Split = "train"
	SplitHeldout Split = "heldout"
	SplitAll     Split = "all"
)

// ParseSplit parses "train", "heldout" or "all".
func ParseSplit(s string) (Split, error) {
	switch Split(s) {
	case SplitTrain, SplitHeldout, SplitAll:
		return Split(s), nil
	}
	return "", fmt.Errorf("split %q must be train, heldout or all", s)
}

// Entry is one generated line with what the generator knows about it.
type Entry struct {
	Line   sim.Line
	Family Family
	Split  Split
	// Modifiers name the response's shaping drawn beside the family: "weak responders",
	// "habituation" (lags are drawn for every responsive line).
	Modifiers []string
}

// Zoo is a generated set of lines.
type Zoo struct {
	Seed    uint64
	Entries []Entry
}

// Code returns the code of line k of the zoo of seed: "Z<seed>-<k>". The reference catalogue's
// codes are numbers, so the two never collide.
func Code(seed uint64, k int) string { return fmt.Sprintf("Z%d-%d", seed, k) }

// controlEvery is the period, in pairs of lines, of the negative controls: pair 2, 8, 14, ...
// is a control pair, so a zoo of 6 or more lines has a control in each split.
const controlEvery = 6

// Generate returns the zoo of n lines (1..MaxLines) of seed. Everything follows from the seed:
// the order of the families and each line's draws. Lines come in pairs of one family: line 2j
// is in the training split and line 2j+1 in the held-out split, so both splits cover the same
// families with different draws. Pair 2 and every sixth pair after it are negative controls;
// the other pairs take the response families in a seeded order, cycling. Line k's own draws
// (sign, opsin, magnitudes, lags, modifiers) depend on the seed and k only, not on n.
func Generate(n int, seed uint64) (*Zoo, error) {
	if n < 1 || n > MaxLines {
		return nil, fmt.Errorf("zoo: %d lines must be within 1-%d", n, MaxLines)
	}
	fams := Families()
	fams = fams[:len(fams)-1] // the control has slots of its own
	order := rand.New(rand.NewPCG(seed, 0x2001))
	order.Shuffle(len(fams), func(i, j int) { fams[i], fams[j] = fams[j], fams[i] })
	z := &Zoo{Seed: seed}
	next := 0
	var fam Family
	for k := range n {
		if k%2 == 0 {
			if j := k / 2; j%controlEvery == 2 {
				fam = Control
			} else {
				fam = fams[next%len(fams)]
				next++
			}
		}
		e, err := line(seed, k, fam)
		if err != nil {
			return nil, err
		}
		z.Entries = append(z.Entries, e)
	}
	return z, nil
}

// line draws line k of the zoo of seed, of family fam.
func line(seed uint64, k int, fam Family) (Entry, error) {
	r := rand.New(rand.NewPCG(seed, 0x3001+uint64(k)))
	e := Entry{Family: fam, Split: SplitTrain}
	if k%2 == 1 {
		e.Split = SplitHeldout
	}
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }
	sign := func() float64 { return []float64{1, -1}[r.IntN(2)] }
	code := Code(seed, k)
	l := sim.Line{Code: code, Neurons: []string{"uncharacterised (generated)"}, Response: sim.NeutralResponse()}
	// The opsin: one of the catalogue's known opsins at a wavelength that activates it.
	op := []struct {
		name string
		sign sim.Sign
		nm   float64
	}{
		{"ChR2(H134R)", sim.Excitatory, 467}, {"Chrimson", sim.Excitatory, 590},
		{"GtACR2", sim.Inhibitory, 467}, {"GtACR1", sim.Inhibitory, 520},
	}[r.IntN(4)]
	l.Opsin, l.Sign, l.WavelengthNM = op.name, op.sign, op.nm
	resp := &l.Response
	switch fam {
	case ReversalUp:
		resp.ReversalRateFactor = round(u(3, 8), 2)
	case ReversalDown:
		resp.ReversalRateFactor = round(u(0.05, 0.3), 2)
	case TurnUp:
		resp.TurnRateFactor = round(u(10, 30), 2)
	case OnsetReversal:
		resp.ReversalAtOnset = round(u(0.4, 0.9), 2)
	case OffsetRebound:
		resp.ReversalAtOffset = round(u(0.4, 0.9), 2)
	case OmegaUp:
		resp.OmegaFactor = round(u(2, 2.8), 2)
	case SpeedUp:
		resp.SpeedFactor = round(u(1.3, 1.8), 2)
	case SpeedDown:
		resp.SpeedFactor = round(u(0.05, 0.5), 2)
	case Pausing:
		resp.PauseRateFactor = round(u(8, 25), 1)
	case HeadSwing:
		if r.IntN(2) == 0 {
			resp.HeadSwingFactor = round(u(0.2, 0.5), 2)
		} else {
			resp.HeadSwingFactor = round(u(1.5, 2), 2)
		}
	case SteerToward:
		resp.SteeringDegS = round(u(30, 90), 1)
	case SteerAway:
		resp.SteeringDegS = round(-u(30, 90), 1)
	case BiasReset:
		resp.BiasReset = round(u(2, 20), 1)
	case Pirouette:
		resp.ReversalRateFactor = round(u(3, 6), 2)
		resp.OmegaFactor = round(u(1.8, 2.5), 2)
		resp.ReversalAtOnset = round(u(0.2, 0.5), 2)
	case ReboundTurn:
		resp.TurnRateFactor = round(u(3, 6), 2)
		resp.ReversalAtOffset = round(u(0.4, 0.8), 2)
		resp.ReversalRateFactor = round(u(1.5, 3), 2)
	case StraightRun:
		resp.SpeedFactor = round(u(1.1, 1.4), 2)
		resp.ReversalRateFactor = round(u(0.2, 0.5), 2)
		resp.BiasReset = round(u(5, 15), 1)
		resp.SteeringDegS = round(sign()*u(25, 60), 1)
	case FreezeSteer:
		resp.SpeedFactor = round(u(0.05, 0.3), 2)
		resp.BiasReset = round(u(5, 20), 1)
		resp.HeadSwingFactor = round(u(0.4, 0.7), 2)
		resp.SteeringDegS = round(sign()*u(15, 40), 1)
	case Control:
	default:
		return Entry{}, fmt.Errorf("zoo: unknown family %q", fam)
	}
	// Lags, weak responders and habituation shape every responsive line.
	lagU, weakU, weakV, habU, tauV, floorV := r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64()
	lagV := r.Float64()
	if fam != Control {
		resp.OnsetLagS = round(0.1*math.Pow(10, lagU), 2)    // 0.1-1 s, log-uniform
		resp.OffsetLagS = round(0.2*math.Pow(12.5, lagV), 2) // 0.2-2.5 s
		if resp.SteeringDegS != 0 {
			// Light timed to the head swing steers only when the effect follows the light
			// well within a quarter of the undulation period (~0.7 s): with lags of a second
			// the effect lags the swing by about 90 deg and its steering averages out.
			resp.OnsetLagS = round(0.1*math.Pow(4, lagU), 2)  // 0.1-0.4 s
			resp.OffsetLagS = round(0.1*math.Pow(5, lagV), 2) // 0.1-0.5 s
		}
		if weakU < 0.3 {
			resp.WeakFraction = round(0.3+0.3*weakV, 2)
			e.Modifiers = append(e.Modifiers, "weak responders")
		} else {
			resp.WeakFraction = round(0.2*weakV, 2)
		}
		if habU < 0.3 {
			resp.HabituationTauS = math.Round(200 + 700*tauV)
			resp.HabituationFloor = round(0.2+0.4*floorV, 2)
			e.Modifiers = append(e.Modifiers, "habituation")
		}
	}
	name := string(fam)
	if fam == Control {
		name = "control (no response)"
	}
	l.Name = fmt.Sprintf("zoo %s, %s", name, l.Sign)
	l.Sources = sources(seed, k, fam, *resp)
	mods := "none"
	if len(e.Modifiers) > 0 {
		mods = strings.Join(e.Modifiers, ", ")
	}
	l.Notes = fmt.Sprintf("zoo seed %d line %d; family %s; split %s; modifiers %s. A generated line (optoloop zoo), not a real one: its response is drawn, not measured.",
		seed, k, fam, e.Split, mods)
	e.Line = l
	if err := l.Validate(); err != nil {
		return Entry{}, fmt.Errorf("zoo: generated line %s does not validate: %w", code, err)
	}
	return e, nil
}

// sources cites the generator for the neurons, the opsin and every response parameter that
// differs from the neutral value: a generated line rests on no literature, and says so.
func sources(seed uint64, k int, fam Family, r sim.Response) map[string]string {
	gen := fmt.Sprintf("generated: optoloop zoo seed %d, line %d; family %s", seed, k, fam)
	s := map[string]string{
		"neurons": gen + "; no expression pattern: a hypothetical site",
		"opsin":   gen + "; a known opsin at a wavelength that activates it, drawn",
	}
	n := sim.NeutralResponse()
	for _, f := range []struct {
		name    string
		v, zero float64
	}{
		{"onset_lag_s", r.OnsetLagS, n.OnsetLagS}, {"offset_lag_s", r.OffsetLagS, n.OffsetLagS},
		{"reversal_rate_factor", r.ReversalRateFactor, n.ReversalRateFactor},
		{"reversal_at_onset", r.ReversalAtOnset, n.ReversalAtOnset}, {"reversal_at_offset", r.ReversalAtOffset, n.ReversalAtOffset},
		{"omega_factor", r.OmegaFactor, n.OmegaFactor}, {"turn_rate_factor", r.TurnRateFactor, n.TurnRateFactor},
		{"speed_factor", r.SpeedFactor, n.SpeedFactor}, {"pause_rate_factor", r.PauseRateFactor, n.PauseRateFactor},
		{"head_swing_factor", r.HeadSwingFactor, n.HeadSwingFactor}, {"steering_deg_s", r.SteeringDegS, n.SteeringDegS},
		{"bias_reset_per_s", r.BiasReset, n.BiasReset}, {"weak_fraction", r.WeakFraction, n.WeakFraction},
		{"habituation_tau_s", r.HabituationTauS, n.HabituationTauS}, {"habituation_floor", r.HabituationFloor, n.HabituationFloor},
	} {
		if f.v != f.zero {
			s[f.name] = gen + "; value drawn"
		}
	}
	return s
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Lines returns the lines of split s (SplitAll: every line), in zoo order.
func (z *Zoo) Lines(s Split) []sim.Line {
	var out []sim.Line
	for _, e := range z.Entries {
		if s == SplitAll || e.Split == s {
			out = append(out, e.Line)
		}
	}
	return out
}

// Codes returns the codes of split s's lines.
func (z *Zoo) Codes(s Split) []string {
	var out []string
	for _, l := range z.Lines(s) {
		out = append(out, l.Code)
	}
	return out
}

// Entry returns the entry of the line with code, if the zoo holds it.
func (z *Zoo) Entry(code string) (Entry, bool) {
	i := slices.IndexFunc(z.Entries, func(e Entry) bool { return e.Line.Code == code })
	if i < 0 {
		return Entry{}, false
	}
	return z.Entries[i], true
}

// Catalogue returns the zoo's lines as a catalogue (to merge over the embedded one).
func (z *Zoo) Catalogue() *sim.Catalogue { return &sim.Catalogue{Lines: z.Lines(SplitAll)} }

// YAML returns the zoo as a catalogue file in the format of arenas/sim/lines.yaml, which
// `--lines-file` takes and sim.ParseCatalogue validates. Each line's notes name its family
// and split (SplitOf reads them back).
func (z *Zoo) YAML() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# optoloop line zoo: %d generated lines of seed %d (optoloop zoo lines --lines %d --seed %d).\n", len(z.Entries), z.Seed, len(z.Entries), z.Seed)
	b.WriteString("# These are not real lines: each response is drawn from the simulator's response space\n")
	b.WriteString("# (package zoo), and the sources say so. Lines 0, 2, 4, ... are the training split, lines\n")
	b.WriteString("# 1, 3, 5, ... the held-out split (each line's notes name its split and family).\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(z.Catalogue()); err != nil {
		return nil, fmt.Errorf("zoo: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("zoo: %w", err)
	}
	return b.Bytes(), nil
}

// SplitOf returns the split a zoo line's notes name (false: not a zoo line).
func SplitOf(l sim.Line) (Split, bool) {
	_, rest, ok := strings.Cut(l.Notes, "; split ")
	if !ok {
		return "", false
	}
	s, _, _ := strings.Cut(rest, ";")
	sp, err := ParseSplit(s)
	if err != nil || sp == SplitAll {
		return "", false
	}
	return sp, true
}

// FamilyOf returns the family a zoo line's notes name (false: not a zoo line).
func FamilyOf(l sim.Line) (Family, bool) {
	_, rest, ok := strings.Cut(l.Notes, "; family ")
	if !ok {
		return "", false
	}
	f, _, _ := strings.Cut(rest, ";")
	if !slices.Contains(Families(), Family(f)) {
		return "", false
	}
	return Family(f), true
}
