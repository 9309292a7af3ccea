package policy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"

	"github.com/optoloop/optoloop/agentlib/nn"
)

// The binary parameter format.
//
// An actor ("member") file, little endian:
//
//	magic          8 bytes  "OLPOLICY"
//	version        uint32   FormatVersion
//	frames         uint32   observation frames (15)
//	features       uint32   features per frame (6)
//	pos scale      float32  position scale in reference px (900)
//	layer count    uint32   number of sizes n (4 for 90-64-64-2)
//	sizes          n x uint32
//	parameters     float32 x nn.NumParams(sizes), in nn.MLP.Params order
//	checksum       uint32   CRC-32 (IEEE) of everything before it
//
// An ensemble blob (what a learner publishes), little endian:
//
//	magic          8 bytes  "OLENSEMB"
//	version        uint32   FormatVersion
//	members        uint32   K
//	K x (uint32 length, member file of that length)
//	checksum       uint32   CRC-32 (IEEE) of everything before it
const (
	FormatVersion  = 1
	memberMagic    = "OLPOLICY"
	ensembleMagic  = "OLENSEMB"
	manifestName   = "ensemble.json"
	maxMembers     = 1 << 12
	maxParamsBytes = 1 << 30
)

// ErrFormat is wrapped by every error about a parameter file or blob that is malformed or does
// not match the wanted architecture or format version; the message names what differs.
var ErrFormat = errors.New("policy: bad parameter data")

// MarshalMember encodes one actor with the observation spec it was trained on.
func MarshalMember(spec ObsSpec, m *nn.MLP) []byte {
	var buf bytes.Buffer
	buf.WriteString(memberMagic)
	w := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) }
	w(uint32(FormatVersion))
	w(uint32(spec.Frames))
	w(uint32(spec.Features))
	w(float32(spec.PosScale))
	sizes := m.Sizes()
	w(uint32(len(sizes)))
	for _, s := range sizes {
		w(uint32(s))
	}
	w(m.Params)
	w(crc32.ChecksumIEEE(buf.Bytes()))
	return buf.Bytes()
}

func checkFrame(data []byte, magic, what string) (*bytes.Reader, error) {
	if len(data) < len(magic)+8 || string(data[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not %s (magic)", ErrFormat, what)
	}
	version := binary.LittleEndian.Uint32(data[len(magic):])
	if version != FormatVersion {
		return nil, fmt.Errorf("%w: %s format version %d, this build reads version %d", ErrFormat, what, version, FormatVersion)
	}
	body := data[:len(data)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return nil, fmt.Errorf("%w: %s checksum mismatch (truncated or corrupted)", ErrFormat, what)
	}
	return bytes.NewReader(body[len(magic)+4:]), nil
}

// UnmarshalMember decodes an actor file and checks it against want; a file of another format
// version, observation spec or layer sizes is refused with an error (wrapping ErrFormat) that
// names the difference.
func UnmarshalMember(data []byte, want Arch) (*nn.MLP, error) {
	r, err := checkFrame(data, memberMagic, "a policy member file")
	if err != nil {
		return nil, err
	}
	got, err := readMemberHeader(r)
	if err != nil {
		return nil, err
	}
	rd := func(v any) error { return binary.Read(r, binary.LittleEndian, v) }
	if d := got.diff(want); d != "" {
		return nil, fmt.Errorf("%w: %s", ErrFormat, d)
	}
	if err := got.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if r.Len() != 4*nn.NumParams(got.Sizes...) {
		return nil, fmt.Errorf("%w: %d parameter bytes for sizes %v, want %d", ErrFormat, r.Len(), got.Sizes, 4*nn.NumParams(got.Sizes...))
	}
	m := nn.New(got.Sizes...)
	if err := rd(m.Params); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	for _, p := range m.Params {
		if math.IsNaN(float64(p)) || math.IsInf(float64(p), 0) {
			return nil, fmt.Errorf("%w: non-finite parameter", ErrFormat)
		}
	}
	return m, nil
}

// MarshalBinary encodes the ensemble as one blob (the unit a learner publishes).
func (e *Ensemble) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(ensembleMagic)
	w := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) }
	w(uint32(FormatVersion))
	w(uint32(len(e.members)))
	for _, m := range e.members {
		b := MarshalMember(e.arch.Spec, m)
		w(uint32(len(b)))
		buf.Write(b)
	}
	w(crc32.ChecksumIEEE(buf.Bytes()))
	return buf.Bytes(), nil
}

// UnmarshalEnsembleOf decodes a blob written by Ensemble.MarshalBinary whose members must all
// have one of the architectures in accept (the first member's says which).
func UnmarshalEnsembleOf(data []byte, accept []Arch) (*Ensemble, error) {
	if len(accept) == 0 {
		return nil, errors.New("policy: no architecture to accept")
	}
	got, err := blobArch(data)
	if err != nil {
		return nil, err
	}
	for _, a := range accept {
		if got.Equal(a) {
			return UnmarshalEnsemble(data, a)
		}
	}
	// Name the difference from the closest known architecture: the one of the same features.
	want := accept[0]
	for _, a := range accept {
		if a.Spec.Features == got.Spec.Features {
			want = a
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrFormat, got.diff(want))
}

// blobArch reads the architecture of an ensemble blob's first member.
func blobArch(data []byte) (Arch, error) {
	r, err := checkFrame(data, ensembleMagic, "an ensemble blob")
	if err != nil {
		return Arch{}, err
	}
	var k, n uint32
	rd := func(v any) error { return binary.Read(r, binary.LittleEndian, v) }
	if err := rd(&k); err != nil || k == 0 || k > maxMembers {
		return Arch{}, fmt.Errorf("%w: member count %d out of range", ErrFormat, k)
	}
	if err := rd(&n); err != nil || int(n) > r.Len() || n > maxParamsBytes {
		return Arch{}, fmt.Errorf("%w: member 0 truncated", ErrFormat)
	}
	b := make([]byte, n)
	_, _ = r.Read(b)
	m, err := checkFrame(b, memberMagic, "a policy member file")
	if err != nil {
		return Arch{}, fmt.Errorf("member 0: %w", err)
	}
	a, err := readMemberHeader(m)
	if err != nil {
		return Arch{}, fmt.Errorf("member 0: %w", err)
	}
	return a, nil
}

// readMemberHeader reads a member file's architecture (after its magic and version): frames,
// features, position scale and layer sizes.
func readMemberHeader(r *bytes.Reader) (Arch, error) {
	var frames, features, nl uint32
	var scale float32
	rd := func(v any) error { return binary.Read(r, binary.LittleEndian, v) }
	if err := errors.Join(rd(&frames), rd(&features), rd(&scale), rd(&nl)); err != nil || nl > 64 {
		return Arch{}, fmt.Errorf("%w: short header", ErrFormat)
	}
	sizes := make([]uint32, nl)
	if err := rd(sizes); err != nil {
		return Arch{}, fmt.Errorf("%w: short header", ErrFormat)
	}
	a := Arch{Spec: ObsSpec{Frames: int(frames), Features: int(features), PosScale: float64(scale)}}
	for _, s := range sizes {
		a.Sizes = append(a.Sizes, int(s))
	}
	return a, nil
}

// UnmarshalEnsemble decodes a blob written by Ensemble.MarshalBinary whose members must all have
// the architecture want.
func UnmarshalEnsemble(data []byte, want Arch) (*Ensemble, error) {
	r, err := checkFrame(data, ensembleMagic, "an ensemble blob")
	if err != nil {
		return nil, err
	}
	var k uint32
	if err := binary.Read(r, binary.LittleEndian, &k); err != nil || k == 0 || k > maxMembers {
		return nil, fmt.Errorf("%w: member count %d out of range", ErrFormat, k)
	}
	members := make([]*nn.MLP, 0, k)
	for i := range k {
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n) > r.Len() || n > maxParamsBytes {
			return nil, fmt.Errorf("%w: member %d truncated", ErrFormat, i)
		}
		b := make([]byte, n)
		_, _ = r.Read(b)
		m, err := UnmarshalMember(b, want)
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		members = append(members, m)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrFormat, r.Len())
	}
	return NewEnsemble(want, members...)
}

type manifest struct {
	FormatVersion int      `json:"format_version"`
	Arch          Arch     `json:"arch"`
	Members       []string `json:"members"`
}

// WriteFileAtomic writes data to path through a temporary file in the same folder, synced,
// then renamed into place (github.com/google/renameio), so that a reader sees either the old
// file or the whole new one, never a part. The file gets mode 0644 whatever the umask: what
// optoloop writes is for the lab to read. The folder must exist.
func WriteFileAtomic(path string, data []byte) error {
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("policy: write %s: %w", path, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return err
	}
	defer f.Cleanup()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.CloseAtomicallyReplace()
}

// SaveDir writes the ensemble to dir (created if needed): one member file per actor
// (member-000.olp, ...) and a manifest, ensemble.json, written last, that lists them with the
// architecture. Every file is written atomically.
func SaveDir(dir string, e *Ensemble) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	man := manifest{FormatVersion: FormatVersion, Arch: e.Arch()}
	for i, m := range e.members {
		name := fmt.Sprintf("member-%03d.olp", i)
		if err := WriteFileAtomic(filepath.Join(dir, name), MarshalMember(e.arch.Spec, m)); err != nil {
			return err
		}
		man.Members = append(man.Members, name)
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dir, manifestName), append(b, '\n'))
}

// LoadDir reads an ensemble written by SaveDir; every member must have the architecture want.
func LoadDir(dir string, want Arch) (*Ensemble, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, fmt.Errorf("policy: load ensemble: %w", err)
	}
	var man manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, manifestName, err)
	}
	if man.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: %s format version %d, this build reads version %d", ErrFormat, manifestName, man.FormatVersion, FormatVersion)
	}
	if len(man.Members) == 0 {
		return nil, fmt.Errorf("%w: %s lists no members", ErrFormat, manifestName)
	}
	var members []*nn.MLP
	for _, name := range man.Members {
		if filepath.Base(name) != name {
			return nil, fmt.Errorf("%w: member name %q is not a plain file name", ErrFormat, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("policy: load ensemble: %w", err)
		}
		m, err := UnmarshalMember(data, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		members = append(members, m)
	}
	return NewEnsemble(want, members...)
}
