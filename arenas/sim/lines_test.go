package sim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultCatalogue(t *testing.T) {
	c, err := DefaultCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"281", "301", "352", "446", "336", "437", "73"}
	if len(c.Lines) != len(want) {
		t.Fatalf("catalogue has %d lines, want %d", len(c.Lines), len(want))
	}
	for _, code := range want {
		l, err := c.Line(code)
		if err != nil {
			t.Fatal(err)
		}
		if code == "73" {
			if l.Sign != NoOpsin || len(l.Response.modulating()) != 0 {
				t.Fatalf("wild type responds: %+v", l)
			}
			continue
		}
		if len(l.Response.modulating()) == 0 {
			t.Errorf("line %s has no light response", code)
		}
	}
	if _, err := c.Line("999"); !errors.Is(err, ErrUnknownLine) {
		t.Fatalf("unknown line: %v", err)
	}
}

const goodLine = `
lines:
  - code: "900"
    name: test line
    neurons: [AIY]
    opsin: ChR2
    sign: excitatory
    wavelength_nm: 467
    response:
      speed_factor: 0.5
    sources:
      neurons: "someone 2020"
      opsin: "someone 2019"
      speed_factor: "someone 2021"
`

func TestCatalogueValidation(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(s string) string
		wantErr string // "" = valid
	}{
		{"valid", func(s string) string { return s }, ""},
		{"negative factor", func(s string) string { return strings.Replace(s, "speed_factor: 0.5", "speed_factor: -2", 1) },
			`line "900": field response.speed_factor: -2 must be >= 0`},
		{"unknown response field", func(s string) string { return strings.Replace(s, "speed_factor: 0.5", "sped_factor: 0.5", 1) },
			`line "900": field sped_factor not found`},
		{"unknown line field", func(s string) string {
			return strings.Replace(s, "    name: test line", "    name: test line\n    colour: red", 1)
		},
			`line "900": field colour not found`},
		{"probability above 1", func(s string) string {
			return strings.Replace(s, "speed_factor: 0.5", "speed_factor: 0.5\n      reversal_at_onset: 1.5", 1)
		}, `line "900": field response.reversal_at_onset: 1.5 must be <= 1`},
		{"sign contradicts opsin", func(s string) string { return strings.Replace(s, "sign: excitatory", "sign: inhibitory", 1) },
			`line "900": field sign: "inhibitory" contradicts opsin ChR2`},
		{"wavelength outside opsin", func(s string) string { return strings.Replace(s, "wavelength_nm: 467", "wavelength_nm: 620", 1) },
			`line "900": field wavelength_nm: 620 nm does not activate ChR2`},
		{"no opsin but responds", func(s string) string {
			s = strings.Replace(s, "opsin: ChR2", "opsin: none", 1)
			s = strings.Replace(s, "sign: excitatory", "sign: none", 1)
			s = strings.Replace(s, "neurons: [AIY]", "neurons: []", 1)
			return strings.Replace(s, "wavelength_nm: 467", "wavelength_nm: 0", 1)
		}, `line "900": field response.speed_factor: a line without opsin cannot respond to light`},
		{"opsin none with a sign", func(s string) string { return strings.Replace(s, "opsin: ChR2", "opsin: none", 1) },
			`line "900": field sign: "excitatory" contradicts opsin "none"`},
		{"missing source", func(s string) string { return strings.Replace(s, `      speed_factor: "someone 2021"`+"\n", "", 1) },
			`line "900": field sources.speed_factor: missing`},
		{"missing opsin source", func(s string) string { return strings.Replace(s, `      opsin: "someone 2019"`+"\n", "", 1) },
			`line "900": field sources.opsin: missing`},
		{"source of nothing", func(s string) string {
			return strings.Replace(s, `      neurons: "someone 2020"`, `      neurons: "someone 2020"`+"\n      colour: \"x\"", 1)
		},
			`line "900": field sources.colour: names no response parameter`},
		{"bad sign", func(s string) string { return strings.Replace(s, "sign: excitatory", "sign: maybe", 1) },
			`line "900": field sign: "maybe" must be excitatory, inhibitory or none`},
		{"no neurons", func(s string) string { return strings.Replace(s, "neurons: [AIY]", "neurons: []", 1) },
			`line "900": field neurons: must name at least one neuron`},
		{"empty code", func(s string) string { return strings.Replace(s, `code: "900"`, `code: ""`, 1) },
			`field code: must not be empty`},
		{"duplicate", func(s string) string { return s + strings.Replace(s, "lines:\n", "", 1) },
			`line "900": field code: duplicate`},
		{"floor without habituation", func(s string) string {
			return strings.Replace(s, "speed_factor: 0.5", "speed_factor: 0.5\n      habituation_floor: 0.5", 1)
		}, `line "900": field response.habituation_floor`},
		{"not yaml", func(string) string { return "lines: [" }, "catalogue"},
		{"empty", func(string) string { return "" }, "catalogue is empty"},
		{"no lines", func(string) string { return "lines: []" }, "catalogue holds no lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCatalogue([]byte(tt.edit(goodLine)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				l, _ := c.Line("900")
				if l.Response.SpeedFactor != 0.5 || l.Response.ReversalRateFactor != 1 {
					t.Fatalf("parsed response %+v: want speed 0.5 and neutral defaults", l.Response)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestLoadCatalogueMerges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lines.yaml")
	if err := os.WriteFile(path, []byte(goodLine), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCatalogue(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Line("900"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Line("446"); err != nil {
		t.Fatal("user file dropped the embedded lines:", err)
	}
	// A user entry with an embedded code replaces it.
	if err := os.WriteFile(path, []byte(strings.Replace(goodLine, `"900"`, `"446"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = LoadCatalogue(path); err != nil {
		t.Fatal(err)
	}
	if l, _ := c.Line("446"); l.Name != "test line" || len(c.Lines) != 7 {
		t.Fatalf("446 not replaced: %q, %d lines", l.Name, len(c.Lines))
	}
	if _, err := LoadCatalogue(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := os.WriteFile(path, []byte(strings.Replace(goodLine, "0.5", "-1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalogue(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("malformed file: %v", err)
	}
}
