package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"

	"path/filepath"
	"strings"
	"testing"

	"github.com/optoloop/optoloop/agentlib/internal/cputime"
	"github.com/optoloop/optoloop/agentlib/nn"
)

func members(k int, seed uint64, sizes ...int) []*nn.MLP {
	rng := rand.New(rand.NewPCG(seed, 3))
	var out []*nn.MLP
	for range k {
		m := nn.New(sizes...)
		m.InitXavier(rng)
		for l := 0; l < m.Layers(); l++ {
			for i := range m.B(l) {
				m.B(l)[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
		out = append(out, m)
	}
	return out
}

func randomObs(rng *rand.Rand) []float32 {
	o := make([]float32, 90)
	for i := range o {
		o[i] = float32(rng.NormFloat64())
	}
	return o
}

// refProbs is the mean of the members' softmax computed independently with nn.Infer.
func refProbs(ms []*nn.MLP, o []float32) []float64 {
	p := make([]float64, 2)
	out := make([]float32, 2)
	for _, m := range ms {
		m.Infer(o, out, make([]float32, m.ScratchLen()))
		mx := math.Max(float64(out[0]), float64(out[1]))
		e0, e1 := math.Exp(float64(out[0])-mx), math.Exp(float64(out[1])-mx)
		p[0] += e0 / (e0 + e1) / float64(len(ms))
		p[1] += e1 / (e0 + e1) / float64(len(ms))
	}
	return p
}

func TestEnsembleMeanArgmaxAndSampling(t *testing.T) {
	ms := members(5, 1, 90, 64, 64, 2)
	e, err := NewEnsemble(ReferenceArch(), ms...)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	dst := make([]float64, 2)
	for range 50 {
		o := randomObs(rng)
		e.Probs(o, dst)
		want := refProbs(ms, o)
		for a := range dst {
			if math.Abs(dst[a]-want[a]) > 1e-5 {
				t.Fatalf("action %d: probability %v, want mean of members %v", a, dst[a], want[a])
			}
		}
		wantAct := 0
		if want[1] > want[0] {
			wantAct = 1
		}
		if got := e.Act(o); got != wantAct {
			t.Fatalf("Act %d, probabilities %v", got, want)
		}
	}
	o := randomObs(rng)
	e.Probs(o, dst)
	n, on := 20000, 0
	for range n {
		on += e.Sample(o, rng)
	}
	if frac, sd := float64(on)/float64(n), math.Sqrt(dst[1]*dst[0]/float64(n)); math.Abs(frac-dst[1]) > 5*sd+1e-3 {
		t.Fatalf("sampled light-on fraction %v, probability %v", frac, dst[1])
	}
	if a := testing.AllocsPerRun(100, func() { e.Act(o) }); a != 0 {
		t.Fatalf("Act allocates %v", a)
	}
	if a := testing.AllocsPerRun(100, func() { e.Sample(o, rng) }); a != 0 {
		t.Fatalf("Sample allocates %v", a)
	}
	// The ensemble holds copies: changing a member afterwards changes nothing.
	before := e.Act(o)
	e.Probs(o, dst)
	p1 := dst[1]
	for _, m := range ms {
		clear(m.Params)
	}
	e.Probs(o, dst)
	if dst[1] != p1 || e.Act(o) != before {
		t.Fatal("ensemble aliases its members")
	}
	if _, err := NewEnsemble(ReferenceArch()); err == nil {
		t.Fatal("empty ensemble accepted")
	}
	if _, err := NewEnsemble(ReferenceArch(), members(1, 1, 90, 32, 2)...); err == nil {
		t.Fatal("member of another shape accepted")
	}
}

func TestFormatRoundTrips(t *testing.T) {
	ms := members(3, 4, 90, 64, 64, 2)
	e, err := NewEnsemble(ReferenceArch(), ms...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := UnmarshalMember(MarshalMember(ReferenceSpec(), ms[1]), ReferenceArch())
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Params {
		if m.Params[i] != ms[1].Params[i] {
			t.Fatal("member round trip changed a parameter")
		}
	}
	blob, _ := e.MarshalBinary()
	e2, err := UnmarshalEnsemble(blob, ReferenceArch())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ens")
	if err := SaveDir(dir, e); err != nil {
		t.Fatal(err)
	}
	e3, err := LoadDir(dir, ReferenceArch())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	p, p2, p3 := make([]float64, 2), make([]float64, 2), make([]float64, 2)
	for range 20 {
		o := randomObs(rng)
		e.Probs(o, p)
		e2.Probs(o, p2)
		e3.Probs(o, p3)
		if p[1] != p2[1] || p[1] != p3[1] {
			t.Fatalf("round trips changed the policy: %v %v %v", p, p2, p3)
		}
	}
	if e3.Len() != 3 {
		t.Fatalf("loaded %d members", e3.Len())
	}
}

// rewrite patches a member file at offset off with v and fixes its checksum.
func rewrite(data []byte, off int, v any) []byte {
	d := append([]byte(nil), data...)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, v)
	copy(d[off:], b.Bytes())
	binary.LittleEndian.PutUint32(d[len(d)-4:], crc32.ChecksumIEEE(d[:len(d)-4]))
	return d
}

func TestFormatRefusesOtherVersionsAndShapes(t *testing.T) {
	ref := ReferenceArch()
	good := MarshalMember(ReferenceSpec(), members(1, 1, 90, 64, 64, 2)[0])
	small := MarshalMember(ReferenceSpec(), members(1, 1, 90, 32, 32, 2)[0])
	spec10 := ObsSpec{Frames: 10, Features: 9, PosScale: 900}
	frames10 := MarshalMember(spec10, members(1, 1, 90, 64, 64, 2)[0])
	corrupt := append([]byte(nil), good...)
	corrupt[60] ^= 0x40
	cases := []struct {
		name, data, want string
	}{
		{"other version", string(rewrite(good, 8, uint32(2))), "format version 2"},
		{"other frames", string(frames10), "observation frames 10, want 15"},
		{"other scale", string(rewrite(good, 20, float32(1000))), "position scale 1000 px, want 900 px"},
		{"other sizes", string(small), "layer sizes [90 32 32 2], want [90 64 64 2]"},
		{"corrupted", string(corrupt), "checksum"},
		{"truncated", string(good[:100]), "checksum"},
		{"not a policy", "hello world, this is not a policy file", "magic"},
		{"ensemble blob as member", "OLENSEMB" + string(good[8:]), "magic"},
	}
	for _, c := range cases {
		_, err := UnmarshalMember([]byte(c.data), ref)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrFormat naming %q", c.name, err, c.want)
		}
	}
	// A directory whose member has another shape is refused, naming the file.
	dir := t.TempDir()
	e, _ := NewEnsemble(Arch{Spec: ReferenceSpec(), Sizes: []int{90, 32, 32, 2}}, members(2, 1, 90, 32, 32, 2)...)
	if err := SaveDir(dir, e); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir, ref); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "member-000.olp") {
		t.Fatalf("loading a 32-wide ensemble as reference: %v", err)
	}
	blob, _ := e.MarshalBinary()
	if _, err := UnmarshalEnsemble(blob, ref); !errors.Is(err, ErrFormat) {
		t.Fatalf("ensemble blob of another shape: %v", err)
	}
	if _, err := LoadDir(t.TempDir(), ref); err == nil {
		t.Fatal("empty directory loaded")
	}
}

func TestPolicyMapGeometry(t *testing.T) {
	ms := members(2, 9, 90, 64, 64, 2)
	e, _ := NewEnsemble(ReferenceArch(), ms...)
	m, err := ComputeMap(e, DefaultMapConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.POn) != 9 || len(m.POn[0]) != 9 || len(m.POn[0][0]) != 36 || len(m.POn[0][0][0]) != 36 {
		t.Fatal("map is not 9 x 9 x 36 x 36")
	}
	if m.XRelPx[0] != -900 || m.XRelPx[8] != 900 || m.XRelPx[4] != 0 || m.BodyRelDeg[0] != -180 || m.BodyRelDeg[35] != 170 {
		t.Fatalf("axes %v %v", m.XRelPx, m.BodyRelDeg)
	}
	// Worm at (+900, -900) from the target (right of and above it in the image): the target
	// lies at 135 degrees. Body relative 20 degrees (ib = 20), head relative -30 (ih = 15).
	body := (135.0 + 20) * math.Pi / 180
	head := body - 30*math.Pi/180
	o := make([]float32, 90)
	for i := range 15 {
		o[i], o[15+i] = float32(math.Sin(body)), float32(math.Cos(body))
		o[30+i], o[45+i] = float32(math.Sin(head)), float32(math.Cos(head))
		o[60+i], o[75+i] = 1, -1
	}
	p := make([]float64, 2)
	e.Probs(o, p)
	if got := m.POn[0][8][20][15]; math.Abs(got-p[1]) > 1e-5 {
		t.Fatalf("map entry %v, direct evaluation %v", got, p[1])
	}
	var buf bytes.Buffer
	if err := m.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Map
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.POn[0][8][20][15] != m.POn[0][8][20][15] || len(back.HeadRelDeg) != 36 {
		t.Fatalf("JSON round trip: %v", err)
	}
	if _, err := ComputeMap(e, MapConfig{}); err == nil {
		t.Fatal("empty grid accepted")
	}

}

func BenchmarkEnsemble20Act(b *testing.B) {
	e, _ := NewEnsemble(ReferenceArch(), members(20, 1, 90, 64, 64, 2)...)
	o := randomObs(rand.New(rand.NewPCG(1, 1)))
	b.ReportAllocs()
	stop := cputime.Start(b)
	for b.Loop() {
		e.Act(o)
	}
	stop()
}

// UnmarshalEnsembleOf takes an ensemble of any accepted architecture, as it is (the light
// observation's 105 inputs included), and refuses one of another, naming the difference.
func TestUnmarshalEnsembleOfKnownArchitectures(t *testing.T) {
	light := ArchOn(LightSpec())
	if light.Sizes[0] != 105 || ReferenceArch().Sizes[0] != 90 {
		t.Fatalf("architectures %v and %v", light.Sizes, ReferenceArch().Sizes)
	}
	for _, a := range KnownArchs() {
		e, err := NewEnsemble(a, members(3, 7, a.Sizes...)...)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEnsembleOf(blob, KnownArchs())
		if err != nil {
			t.Fatalf("%v: %v", a.Spec, err)
		}
		if !got.Arch().Equal(a) || got.ObservationSize() != a.Sizes[0] {
			t.Fatalf("decoded %+v, want %+v", got.Arch(), a)
		}
		o := make([]float32, a.Sizes[0])
		for i := range o {
			o[i] = float32(i%7) / 7
		}
		p1, p2 := make([]float64, 2), make([]float64, 2)
		e.Probs(o, p1)
		got.Probs(o, p2)
		if p1[1] != p2[1] {
			t.Fatalf("decoded ensemble gives P(on) %v, the original %v", p2[1], p1[1])
		}
		if _, err := ComputeMap(got, MapConfig{AngleBins: 4, PosBins: 3, PosRange: 1}); err != nil {
			t.Fatalf("map of %v: %v", a.Spec, err)
		}
	}
	// Accepting only the reference, a light ensemble is refused with the difference named.
	e, _ := NewEnsemble(light, members(2, 7, light.Sizes...)...)
	blob, _ := e.MarshalBinary()
	if _, err := UnmarshalEnsembleOf(blob, []Arch{ReferenceArch()}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "observation features 7, want 6") {
		t.Fatalf("light ensemble accepted as reference only: %v", err)
	}
	if _, err := UnmarshalEnsembleOf([]byte("not an ensemble at all, just bytes"), KnownArchs()); !errors.Is(err, ErrFormat) {
		t.Fatalf("garbage: %v", err)
	}
}
