package track

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestWormposeSample(t *testing.T) {
	dir := dataDir(t, "wormpose-sample")
	raw, err := os.ReadFile(filepath.Join(dir, "groundtruth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var gt wormposeTruth
	if err := json.Unmarshal(raw, &gt); err != nil {
		t.Fatal(err)
	}
	// The worm is ~89 px long (README): 1 mm = 89 px, 890 px/cm.
	cfg := DefaultConfig(stillCalibration(100, 100, 890))
	cfg.PlateMask = false
	cfg.RequireSettled = false
	cfg.RefineLength = false
	tr, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var labelled, endOK, midOK, headOK, unl, unlFlag, labFlag int
	for _, fr := range gt.Frames {
		f := readGrey(t, filepath.Join(dir, fr.File))
		tr.Reset()
		r := tr.Track(f)
		conf := r.OK && r.Confidence >= Confident
		if fr.Skeleton == nil {
			unl++
			if !conf {
				unlFlag++
			}
			continue
		}
		labelled++
		if !conf {
			labFlag++
			t.Logf("frame %d labelled but flagged: %v conf %.2f len %.1f area %d %v", fr.Frame, r.Status, r.Confidence, r.Length, r.Area, r.Flags)
			continue
		}
		sk := fr.Skeleton
		L := 0.0
		for i := 1; i < len(sk); i++ {
			L += dist(sk[i], sk[i-1])
		}
		gh, gtl := sk[0], sk[len(sk)-1]
		e1 := max(dist(r.Head, gh), dist(r.Tail, gtl))
		e2 := max(dist(r.Head, gtl), dist(r.Tail, gh))
		if e1 < e2 {
			headOK++
		}
		if min(e1, e2) <= 0.1*L {
			endOK++
		} else {
			t.Logf("frame %d endpoints off by %.1f (L %.1f, our len %.1f)", fr.Frame, min(e1, e2), L, r.Length)
		}
		m := 0.0
		for _, p := range sk {
			m += distToPolyline(p, r.Midline)
		}
		m /= float64(len(sk))
		if m < 2 {
			midOK++
		} else {
			t.Logf("frame %d midline distance %.2f", fr.Frame, m)
		}
	}
	endShare := float64(endOK) / float64(labelled)
	midShare := float64(midOK) / float64(labelled)
	flagShare := float64(unlFlag) / float64(unl)
	headShare := float64(headOK) / float64(labelled)
	t.Logf("labelled %d: endpoints ok %d (%.1f%%), midline ok %d (%.1f%%), head placed right %d (%.1f%%; %.1f%% of the confident), flagged %d; unlabelled %d flagged %d (%.1f%%)",
		labelled, endOK, 100*endShare, midOK, 100*midShare, headOK, 100*headShare, 100*float64(headOK)/float64(labelled-labFlag), labFlag, unl, unlFlag, 100*flagShare)
	// Still images: the head from the body's shape and shading (headCue), the ground truth's
	// first point.
	if headShare < 0.8 {
		t.Errorf("head placed right in %.1f%% of labelled frames, want >= 80%%", 100*headShare)
	}
	if labelled != 720 || unl != 280 {
		t.Errorf("ground truth has %d labelled and %d unlabelled frames, want 720 and 280", labelled, unl)
	}
	if endShare < 0.9 {
		t.Errorf("end points within 0.1 body length in %.1f%% of labelled frames, want >= 90%%", 100*endShare)
	}
	if midShare < 0.9 {
		t.Errorf("mean midline distance < 2 px in %.1f%% of labelled frames, want >= 90%%", 100*midShare)
	}
	// Most unlabelled frames are coils: at least 40 % of them must be flagged (measured: ~52 %).
	if flagShare < 0.4 {
		t.Errorf("flagged %.1f%% of the unlabelled frames, want >= 40%%", 100*flagShare)
	}
}
