package track

import (
	"fmt"
	"testing"

	"github.com/optoloop/optoloop/arenas"
)

// fuzzFrame builds a w x h frame whose pixels repeat data (0 when data is empty).
func fuzzFrame(data []byte, w, h int) arenas.Frame {
	pix := make([]byte, w*h)
	if len(data) > 0 {
		for i := range pix {
			pix[i] = data[i%len(data)]
		}
	}
	return arenas.Frame{Width: w, Height: h, Pix: pix}
}

// FuzzTrack feeds random and adversarial images to the tracker, without and with a
// background: it must never panic and never report a confident pose.
func FuzzTrack(f *testing.F) {
	noise := make([]byte, 4099)
	x := uint32(12345)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		noise[i] = byte(x)
	}
	f.Add([]byte{0}, uint16(64), uint16(64))                      // all black
	f.Add([]byte{255}, uint16(64), uint16(64))                    // all white
	f.Add(noise, uint16(128), uint16(96))                         // noise
	f.Add([]byte{7}, uint16(1), uint16(1))                        // tiny
	f.Add([]byte{1, 200}, uint16(2), uint16(3))                   // tiny, odd
	f.Add([]byte{128}, uint16(2160), uint16(1920))                // huge, flat
	f.Add(noise, uint16(2160), uint16(1920))                      // huge noise
	f.Add([]byte{}, uint16(127), uint16(33))                      // odd size, no data
	f.Add([]byte{0, 0, 0, 255, 255, 255}, uint16(97), uint16(61)) // stripes
	f.Add([]byte{170, 170, 170, 170, 60}, uint16(300), uint16(5)) // thin strip
	// Dark 2x2 dots every 5 px: over 160000 blobs in one frame.
	dots := make([]byte, 5*2160)
	for y := range 5 {
		for x := range 2160 {
			dots[y*2160+x] = 200
			if x%5 < 2 && y < 2 {
				dots[y*2160+x] = 20
			}
		}
	}
	f.Add(dots, uint16(2160), uint16(1920))
	f.Fuzz(func(t *testing.T, data []byte, w, h uint16) {
		width, height := int(w)%2200+1, int(h)%2000+1
		fr := fuzzFrame(data, width, height)
		cal := stillCalibration(width, height, 540)
		for _, withBackground := range []bool{false, true} {
			tr, err := New(DefaultConfig(cal), nil)
			if err != nil {
				t.Fatal(err)
			}
			if withBackground {
				if err := tr.SetBackground(fuzzFrame([]byte{170}, width, height)); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 2 { // twice: the second frame searches around the first result
				fr.Seq = uint64(i)
				r := tr.Track(fr)
				if r.OK && r.Confidence >= Confident {
					t.Errorf("confident pose %+v (status %v) from a %dx%d fuzz image (background %v)", r.Pose, r.Status, width, height, withBackground)
				}
			}
			tr.Close()
		}
	})
}

// FuzzTrackScenes tracks rendered adversarial scenes (see fuzzScene): a worm's track without
// a worm (a thin line, a groove with dark edges), a second worm entering from the edge, a head
// bent back onto the body, a loop, a tight coil, a free worm and a plate with debris only, at
// random lengths (0.4-1.5 mm), rotations and positions, in bright-field and dark-field (the
// polarity set or decided by the tracker). It must never panic, never be ok without a worm and
// never give a confident pose whose ends are not near the true ends or whose midline leaves
// the true body.
func FuzzTrackScenes(f *testing.F) {
	for kind := range uint8(len(fuzzKinds)) {
		for i, dark := range []bool{false, true} {
			f.Add(kind, uint64(100+10*int(kind)+i), 0.1+0.37*float64(i), 0.13*float64(kind), 0.61, dark, false)
			f.Add(kind, uint64(200+10*int(kind)+i), 0.93-0.4*float64(i), 0.5+0.07*float64(kind), 0.27, dark, true)
		}
	}
	// Found by fuzzing: a thin track taken for a worm (ok), a worm alone with a confident
	// midline off its body, a piece of debris taken for a worm.
	f.Add(uint8(0), uint64(16540450060871917114), 0.9638727613575776, 0.5474032705641128, 0.9216101468184207, false, false)
	f.Add(uint8(7), uint64(14149144735581568833), 0.7185632210378808, 0.2635377351135313, 0.24177302054690464, false, false)
	f.Fuzz(func(t *testing.T, kind uint8, seed uint64, a, b, c float64, dark, auto bool) {
		s, frames, truth := fuzzScene(t, kind, seed, a, b, c, dark)
		pol := polarityOf(dark)
		if auto {
			pol = AutoPolarity
		}
		what := fmt.Sprintf("%s (kind %d seed %d a %.3g b %.3g c %.3g dark-field %v polarity %v)", fuzzKinds[int(kind)%len(fuzzKinds)], kind, seed, a, b, c, dark, pol)
		checkScene(t, s, frames, truth, pol, what, int(kind)%len(fuzzKinds) == 7)
	})
}
