package sim

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

//go:embed lines.yaml
var embeddedLines []byte

// ErrUnknownLine is returned by Catalogue.Line for a code the catalogue does not hold.
var ErrUnknownLine = errors.New("unknown line")

// Sign is how an opsin acts on the neurons that express it.
type Sign string

// The signs a catalogue entry may name.
const (
	Excitatory Sign = "excitatory"
	Inhibitory Sign = "inhibitory"
	NoOpsin    Sign = "none"
)

// Line is one transgenic line: where the opsin is, what it is, and how the worm's behaviour
// changes while the light is on.
type Line struct {
	// Code is the reference's line code ("446").
	Code string `yaml:"code" json:"code"`
	// Name is a short human description ("pan-neuronal inhibition").
	Name string `yaml:"name" json:"name"`
	// Neurons are the neurons (or classes) expressing the opsin; "all" for pan-neuronal.
	Neurons []string `yaml:"neurons" json:"neurons"`
	// Opsin names the opsin ("ChR2(H134R)", "GtACR2", ...), "none" for a line without one.
	Opsin string `yaml:"opsin" json:"opsin"`
	// Sign is excitatory, inhibitory or none; it must agree with the opsin when the opsin is known.
	Sign Sign `yaml:"sign" json:"sign"`
	// WavelengthNM is the stimulation LED's wavelength; 0 only for a line without opsin.
	WavelengthNM float64 `yaml:"wavelength_nm" json:"wavelength_nm"`
	// Response is how behaviour changes while the light is on.
	Response Response `yaml:"response" json:"response"`
	// Sources maps each response parameter (by its catalogue name, e.g. "speed_factor") and
	// "neurons"/"opsin" to the literature it rests on. A line with an opsin must cite its
	// neurons, its opsin and every parameter that differs from the neutral value.
	Sources map[string]string `yaml:"sources" json:"sources"`
	// Notes is free text.
	Notes string `yaml:"notes,omitempty" json:"notes,omitempty"`
}

// Response describes a line's light response as modulations of the worm's behaviour while the
// effect of the light is present. The effect follows the light through a first-order lag
// (OnsetLagS rising, OffsetLagS falling) and is scaled by the animal's responsiveness, which
// fades with exposure (habituation). Factors multiply the baseline (1 = no change).
type Response struct {
	// OnsetLagS and OffsetLagS are the time constants, in seconds, of the effect rising after
	// light on and decaying after light off.
	OnsetLagS  float64 `yaml:"onset_lag_s" json:"onset_lag_s"`
	OffsetLagS float64 `yaml:"offset_lag_s" json:"offset_lag_s"`
	// ReversalRateFactor multiplies the spontaneous reversal rate.
	ReversalRateFactor float64 `yaml:"reversal_rate_factor" json:"reversal_rate_factor"`
	// ReversalAtOnset and ReversalAtOffset are probabilities of an immediate reversal when the
	// effect sets in (light on) and when it wears off (light off, a rebound).
	ReversalAtOnset  float64 `yaml:"reversal_at_onset" json:"reversal_at_onset"`
	ReversalAtOffset float64 `yaml:"reversal_at_offset" json:"reversal_at_offset"`
	// OmegaFactor multiplies the share of reversals that end in an omega turn (capped at 1).
	OmegaFactor float64 `yaml:"omega_factor" json:"omega_factor"`
	// TurnRateFactor multiplies the rate of shallow turns.
	TurnRateFactor float64 `yaml:"turn_rate_factor" json:"turn_rate_factor"`
	// SpeedFactor multiplies the forward speed (0 = paralysis).
	SpeedFactor float64 `yaml:"speed_factor" json:"speed_factor"`
	// PauseRateFactor multiplies the rate of spontaneous pauses.
	PauseRateFactor float64 `yaml:"pause_rate_factor" json:"pause_rate_factor"`
	// HeadSwingFactor multiplies the head-swing amplitude.
	HeadSwingFactor float64 `yaml:"head_swing_factor" json:"head_swing_factor"`
	// SteeringDegS is a turning rate, degrees per second at full effect and full head swing,
	// toward the side the head is swung to (negative: away from it): light timed with the
	// head-swing phase steers the worm.
	SteeringDegS float64 `yaml:"steering_deg_s" json:"steering_deg_s"`
	// BiasReset is the rate (per second at full effect) at which the slowly drifting turning
	// bias is pulled back to straight locomotion.
	BiasReset float64 `yaml:"bias_reset_per_s" json:"bias_reset_per_s"`
	// WeakFraction is the share of animals that respond weakly (responsiveness 0-0.3 instead
	// of about 1).
	WeakFraction float64 `yaml:"weak_fraction" json:"weak_fraction"`
	// HabituationTauS is the time constant, in seconds of light, with which the response fades
	// under long exposure (0: no habituation); HabituationFloor is the fraction that remains.
	HabituationTauS  float64 `yaml:"habituation_tau_s" json:"habituation_tau_s"`
	HabituationFloor float64 `yaml:"habituation_floor" json:"habituation_floor"`
}

// NeutralResponse is a response that changes nothing.
func NeutralResponse() Response {
	return Response{
		ReversalRateFactor: 1, OmegaFactor: 1, TurnRateFactor: 1, SpeedFactor: 1,
		PauseRateFactor: 1, HeadSwingFactor: 1, HabituationFloor: 1,
	}
}

// modulating reports the names of the parameters that change behaviour (differ from neutral).
func (r Response) modulating() []string {
	n := NeutralResponse()
	var out []string
	rv, nv := reflect.ValueOf(r), reflect.ValueOf(n)
	t := rv.Type()
	for i := 0; i < t.NumField(); i++ {
		name := yamlName(t.Field(i))
		switch name {
		case "onset_lag_s", "offset_lag_s", "weak_fraction", "habituation_tau_s", "habituation_floor":
			continue // shape the response, do not make one
		}
		if rv.Field(i).Float() != nv.Field(i).Float() {
			out = append(out, name)
		}
	}
	return out
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if i := strings.IndexByte(tag, ','); i >= 0 {
		tag = tag[:i]
	}
	return tag
}

// responseFields lists the catalogue names of Response's fields.
func responseFields() map[string]bool {
	t := reflect.TypeOf(Response{})
	m := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		m[yamlName(t.Field(i))] = true
	}
	return m
}

// opsinSigns are the opsins whose action the catalogue checks entries against.
var opsinSigns = map[string]struct {
	sign   Sign
	lo, hi float64 // usable wavelengths, nm
}{
	"chr2":        {Excitatory, 400, 520},
	"chr2(h134r)": {Excitatory, 400, 520},
	"chrimson":    {Excitatory, 500, 660},
	"gtacr1":      {Inhibitory, 450, 560},
	"gtacr2":      {Inhibitory, 400, 520},
	"nphr":        {Inhibitory, 540, 620},
	"arch":        {Inhibitory, 520, 600},
}

// Validate reports the first malformed or contradictory field, naming the line and field.
func (l *Line) Validate() error {
	bad := func(field string, format string, a ...any) error {
		return fmt.Errorf("line %q: field %s: %s", l.Code, field, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(l.Code) == "" {
		return errors.New("line \"\": field code: must not be empty")
	}
	if strings.TrimSpace(l.Name) == "" {
		return bad("name", "must not be empty")
	}
	opsin := strings.ToLower(strings.TrimSpace(l.Opsin))
	switch l.Sign {
	case Excitatory, Inhibitory, NoOpsin:
	default:
		return bad("sign", "%q must be excitatory, inhibitory or none", l.Sign)
	}
	if opsin == "" {
		return bad("opsin", "must not be empty (use \"none\" for a line without opsin)")
	}
	if (opsin == "none") != (l.Sign == NoOpsin) {
		return bad("sign", "%q contradicts opsin %q", l.Sign, l.Opsin)
	}
	r := l.Response
	if opsin == "none" {
		if len(l.Neurons) != 0 {
			return bad("neurons", "a line without opsin expresses it in no neurons")
		}
		if l.WavelengthNM != 0 {
			return bad("wavelength_nm", "%v: a line without opsin has no stimulation wavelength (use 0)", l.WavelengthNM)
		}
		if m := r.modulating(); len(m) > 0 {
			return bad("response."+m[0], "a line without opsin cannot respond to light")
		}
	} else {
		if len(l.Neurons) == 0 {
			return bad("neurons", "must name at least one neuron")
		}
		for i, n := range l.Neurons {
			if strings.TrimSpace(n) == "" {
				return bad(fmt.Sprintf("neurons[%d]", i), "must not be empty")
			}
		}
		if !(l.WavelengthNM >= 300 && l.WavelengthNM <= 750) {
			return bad("wavelength_nm", "%v must be within 300-750", l.WavelengthNM)
		}
		if k, ok := opsinSigns[opsin]; ok {
			if k.sign != l.Sign {
				return bad("sign", "%q contradicts opsin %s, which is %s", l.Sign, l.Opsin, k.sign)
			}
			if l.WavelengthNM < k.lo || l.WavelengthNM > k.hi {
				return bad("wavelength_nm", "%v nm does not activate %s (%v-%v nm)", l.WavelengthNM, l.Opsin, k.lo, k.hi)
			}
		}
	}
	checks := []struct {
		field  string
		v      float64
		lo, hi float64
	}{
		{"onset_lag_s", r.OnsetLagS, 0, 5},
		{"offset_lag_s", r.OffsetLagS, 0, 10},
		{"reversal_rate_factor", r.ReversalRateFactor, 0, 50},
		{"reversal_at_onset", r.ReversalAtOnset, 0, 1},
		{"reversal_at_offset", r.ReversalAtOffset, 0, 1},
		{"omega_factor", r.OmegaFactor, 0, 20},
		{"turn_rate_factor", r.TurnRateFactor, 0, 50},
		{"speed_factor", r.SpeedFactor, 0, 3},
		{"pause_rate_factor", r.PauseRateFactor, 0, 50},
		{"head_swing_factor", r.HeadSwingFactor, 0, 2},
		{"steering_deg_s", r.SteeringDegS, -180, 180},
		{"bias_reset_per_s", r.BiasReset, 0, 20},
		{"weak_fraction", r.WeakFraction, 0, 1},
		{"habituation_tau_s", r.HabituationTauS, 0, 1e5},
		{"habituation_floor", r.HabituationFloor, 0, 1},
	}
	for _, c := range checks {
		switch {
		case math.IsNaN(c.v) || math.IsInf(c.v, 0):
			return bad("response."+c.field, "%v must be finite", c.v)
		case c.v < c.lo:
			return bad("response."+c.field, "%v must be >= %v", c.v, c.lo)
		case c.v > c.hi:
			return bad("response."+c.field, "%v must be <= %v", c.v, c.hi)
		}
	}
	if r.HabituationTauS == 0 && r.HabituationFloor != 1 {
		return bad("response.habituation_floor", "%v without habituation_tau_s (no habituation needs floor 1)", r.HabituationFloor)
	}
	known := responseFields()
	keys := make([]string, 0, len(l.Sources))
	for k := range l.Sources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "neurons" && k != "opsin" && !known[k] {
			return bad("sources."+k, "names no response parameter")
		}
		if strings.TrimSpace(l.Sources[k]) == "" {
			return bad("sources."+k, "must cite the literature")
		}
	}
	if opsin != "none" {
		if l.Sources["neurons"] == "" {
			return bad("sources.neurons", "missing: cite the expression pattern")
		}
		if l.Sources["opsin"] == "" {
			return bad("sources.opsin", "missing: cite the opsin and its wavelength")
		}
		for _, m := range r.modulating() {
			if l.Sources[m] == "" {
				return bad("sources."+m, "missing: response.%s differs from neutral and needs a source", m)
			}
		}
	}
	return nil
}

// Catalogue is the set of lines a simulator knows.
type Catalogue struct {
	Lines []Line `yaml:"lines" json:"lines"`
}

// DefaultCatalogue returns the embedded catalogue of the reference lines.
func DefaultCatalogue() (*Catalogue, error) {
	c, err := ParseCatalogue(embeddedLines)
	if err != nil {
		return nil, fmt.Errorf("embedded catalogue: %w", err)
	}
	return c, nil
}

// ParseCatalogue decodes a YAML (or JSON, which is YAML) catalogue strictly (unknown fields are
// errors; missing response fields take the neutral value) and validates every line.
func ParseCatalogue(data []byte) (*Catalogue, error) {
	var raw struct {
		Lines []yaml.Node `yaml:"lines"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("catalogue is empty")
		}
		return nil, fmt.Errorf("catalogue: %w", err)
	}
	if len(raw.Lines) == 0 {
		return nil, errors.New("catalogue holds no lines")
	}
	c := &Catalogue{}
	seen := map[string]bool{}
	for i := range raw.Lines {
		l := Line{Response: NeutralResponse()}
		if err := decodeStrict(&raw.Lines[i], &l); err != nil {
			var id struct {
				Code string `yaml:"code"`
			}
			if raw.Lines[i].Decode(&id) == nil && id.Code != "" {
				return nil, fmt.Errorf("catalogue: line %q: %w", id.Code, err)
			}
			return nil, fmt.Errorf("catalogue: lines[%d]: %w", i, err)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("catalogue: %w", err)
		}
		if seen[l.Code] {
			return nil, fmt.Errorf("catalogue: line %q: field code: duplicate", l.Code)
		}
		seen[l.Code] = true
		c.Lines = append(c.Lines, l)
	}
	return c, nil
}

// decodeStrict decodes one node refusing unknown fields (Node.Decode does not check them).
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err = dec.Decode(v)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// One line: "field x not found in type sim.Response; ..." (line numbers are relative
		// to the entry, so they are left out).
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			if _, rest, ok := strings.Cut(m, ": "); ok && strings.HasPrefix(m, "line ") {
				m = rest
			}
			msgs[i] = m
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return err
}

// Line returns the line with the given code.
func (c *Catalogue) Line(code string) (Line, error) {
	for _, l := range c.Lines {
		if l.Code == code {
			return l, nil
		}
	}
	codes := make([]string, len(c.Lines))
	for i, l := range c.Lines {
		codes[i] = l.Code
	}
	return Line{}, fmt.Errorf("%w %q (catalogue has %s)", ErrUnknownLine, code, strings.Join(codes, ", "))
}

// LoadCatalogue returns the embedded catalogue merged with the user's file at path, when path
// is not empty: the file's lines replace embedded lines with the same code and add the others.
// The file must be a valid catalogue on its own.
func LoadCatalogue(path string) (*Catalogue, error) {
	c, err := DefaultCatalogue()
	if err != nil || path == "" {
		return c, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lines file: %w", err)
	}
	user, err := ParseCatalogue(data)
	if err != nil {
		return nil, fmt.Errorf("lines file %s: %w", path, err)
	}
	c.Merge(user)
	return c, nil
}

// Merge adds other's lines to c, replacing lines with the same code.
func (c *Catalogue) Merge(other *Catalogue) {
	for _, l := range other.Lines {
		replaced := false
		for i := range c.Lines {
			if c.Lines[i].Code == l.Code {
				c.Lines[i], replaced = l, true
			}
		}
		if !replaced {
			c.Lines = append(c.Lines, l)
		}
	}
}
