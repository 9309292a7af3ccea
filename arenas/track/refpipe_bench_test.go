package track

import (
	"image"
	"image/color"
	"math"
	"slices"
	"testing"

	"gocv.io/x/gocv"

	"github.com/optoloop/optoloop/arenas"
)

// refPipeline is the reference study's per-frame worm detector (Li, Kreiman and Ramanathan,
// the RLWorms repository's improc.py: grab_im, find_worm_boxes, find_angs, find_body),
// re-implemented with OpenCV for BenchmarkReferencePipeline2160x1920. Every frame, the whole
// frame: the background is subtracted (saturating), the difference is thresholded at 20 grey
// levels, the binary image is summed over its columns and its rows and the highest peak of each
// sum (above its mean plus one deviation) places a box of +-30 px; a box whose difference sums
// to more than 2000 holds the worm, whose centre is the centre of mass of the thresholded box.
// The two ends are the best matches (squared difference) of 12 end templates (7x7, every 30
// deg) on the box thresholded at its 80th brightest pixel, and the body angle is a line fitted
// to the outer contour of the thresholded box, rounded to 30 deg and pointed along the ends.
//
// The reference's rig images the worm bright on dark and subtracts the background from the
// frame; the simulated frames show a dark worm, so the frame is subtracted from the background
// instead (the same operations). Its end templates are images on the rig's disk; here each is a
// 3 px wide bright stroke from the template's centre towards its angle.
type refPipeline struct {
	src, diff, thresh, colSum, rowSum, mean, std, box, boxThr, boxBin, match, line, noMask gocv.Mat
	templates                                                                              []gocv.Mat
	pix                                                                                    []uint8
}

// refWorm is what the reference pipeline reports for a frame.
type refWorm struct {
	centre    [2]float64
	ends      [2]image.Point
	bodyAngle float64 // degrees, a multiple of 30
}

const (
	refThreshold  = 20
	refBuffer     = 30
	refBrightness = 2000
	refDegIncr    = 30
	refTopPixel   = 80
)

func newRefPipeline() *refPipeline {
	p := &refPipeline{}
	for _, m := range p.mats() {
		*m = gocv.NewMat()
	}
	for deg := 0; deg < 360; deg += refDegIncr {
		t := gocv.NewMatWithSize(7, 7, gocv.MatTypeCV8U)
		a := float64(deg) * math.Pi / 180
		end := image.Pt(3+int(math.Round(4*math.Cos(a))), 3-int(math.Round(4*math.Sin(a))))
		gocv.Line(&t, image.Pt(3, 3), end, color.RGBA{255, 255, 255, 0}, 3)
		p.templates = append(p.templates, t)
	}
	return p
}

func (p *refPipeline) mats() []*gocv.Mat {
	return []*gocv.Mat{&p.src, &p.diff, &p.thresh, &p.colSum, &p.rowSum, &p.mean, &p.std, &p.box, &p.boxThr, &p.boxBin, &p.match, &p.line, &p.noMask}
}

func (p *refPipeline) close() {
	for _, m := range p.mats() {
		m.Close()
	}
	for _, t := range p.templates {
		t.Close()
	}
}

// peak is find_peaks with one worm: the index of the sum's maximum if it exceeds the sum's mean
// plus one standard deviation.
func (p *refPipeline) peak(sum gocv.Mat, cols bool) (int, bool) {
	gocv.MeanStdDev(sum, &p.mean, &p.std)
	mu, sd := p.mean.GetDoubleAt(0, 0), p.std.GetDoubleAt(0, 0)
	_, mx, _, loc := gocv.MinMaxLoc(sum)
	if float64(mx) <= mu+sd {
		return 0, false
	}
	if cols {
		return loc.X, true
	}
	return loc.Y, true
}

// detect runs the reference's detector on f against the background bg.
func (p *refPipeline) detect(f arenas.Frame, bg gocv.Mat) (refWorm, bool) {
	ensure(&p.src, f.Height, f.Width, gocv.MatTypeCV8U)
	src, err := p.src.DataPtrUint8()
	if err != nil {
		return refWorm{}, false
	}
	copy(src, f.Pix)
	gocv.Subtract(bg, p.src, &p.diff)
	gocv.Threshold(p.diff, &p.thresh, refThreshold, 255, gocv.ThresholdBinary)
	gocv.Reduce(p.thresh, &p.colSum, 0, gocv.ReduceSum, gocv.MatTypeCV32S)
	gocv.Reduce(p.thresh, &p.rowSum, 1, gocv.ReduceSum, gocv.MatTypeCV32S)
	px, okx := p.peak(p.colSum, true)
	py, oky := p.peak(p.rowSum, false)
	if !okx || !oky {
		return refWorm{}, false
	}
	r := image.Rect(px-refBuffer, py-refBuffer, px+refBuffer+1, py+refBuffer+1).Intersect(image.Rect(0, 0, f.Width, f.Height))
	raw := p.diff.Region(r)
	raw.CopyTo(&p.box)
	raw.Close()
	if p.box.Sum().Val1 <= refBrightness {
		return refWorm{}, false
	}
	// Centre of mass of the thresholded box.
	gocv.Threshold(p.box, &p.boxBin, refThreshold, 255, gocv.ThresholdBinary)
	bin, err := p.boxBin.DataPtrUint8()
	if err != nil {
		return refWorm{}, false
	}
	w, h := r.Dx(), r.Dy()
	var sx, sy, sw float64
	for y := range h {
		for x := range w {
			if v := float64(bin[y*w+x]); v > 0 {
				sx += v * float64(x)
				sy += v * float64(y)
				sw += v
			}
		}
	}
	var out refWorm
	sw += 1e-6
	out.centre = [2]float64{float64(r.Min.X) + sx/sw, float64(r.Min.Y) + sy/sw}
	// find_angs: the ends by template matching on the box thresholded at its 80th brightest
	// pixel.
	boxPix, err := p.box.DataPtrUint8()
	if err != nil {
		return refWorm{}, false
	}
	p.pix = append(p.pix[:0], boxPix...)
	slices.Sort(p.pix)
	top := p.pix[max(0, len(p.pix)-refTopPixel)]
	gocv.Threshold(p.box, &p.boxThr, float32(top), 255, gocv.ThresholdBinary)
	type match struct {
		score float32
		at    image.Point
	}
	best := [2]match{{score: math.MaxFloat32}, {score: math.MaxFloat32}}
	for _, t := range p.templates {
		gocv.MatchTemplate(p.boxThr, t, &p.match, gocv.TmSqdiff, p.noMask)
		mn, _, loc, _ := gocv.MinMaxLoc(p.match)
		at := image.Pt(r.Min.X+loc.X+3, r.Min.Y+loc.Y+3)
		m := match{mn, at}
		switch {
		case math.Hypot(float64(at.X-best[0].at.X), float64(at.Y-best[0].at.Y)) < 4:
			if mn < best[0].score {
				best[0] = m
			}
		case mn < best[0].score:
			best[1], best[0] = best[0], m
		case mn < best[1].score && math.Hypot(float64(at.X-best[1].at.X), float64(at.Y-best[1].at.Y)) >= 4:
			best[1] = m
		}
	}
	out.ends = [2]image.Point{best[0].at, best[1].at}
	// find_body: a line through the outer contour of the thresholded box, to 30 deg, pointed
	// along the ends.
	cs := gocv.FindContours(p.boxBin, gocv.RetrievalExternal, gocv.ChainApproxNone)
	if cs.Size() > 0 {
		gocv.FitLine(cs.At(0), &p.line, gocv.DistL2, 0, 0.01, 0.01)
		vx, vy := float64(p.line.GetFloatAt(0, 0)), float64(p.line.GetFloatAt(1, 0))
		deg := 30 * math.Round(math.Atan2(-vy, vx)*180/math.Pi/30)
		ex, ey := float64(out.ends[0].X-out.ends[1].X), float64(-(out.ends[0].Y - out.ends[1].Y))
		a := deg * math.Pi / 180
		if ex*math.Cos(a)+ey*math.Sin(a) < 0 {
			deg += 180
		}
		out.bodyAngle = deg
	}
	cs.Close()
	return out, true
}

// BenchmarkReferencePipeline2160x1920 is the reference study's detector (refPipeline) on the
// frames of BenchmarkTrack2160x1920, against the same background: what the reference spends on
// every frame, beside steady tracking and the lost-worm search. Run with -cpu 1.
func BenchmarkReferencePipeline2160x1920(b *testing.B) {
	frames, tr := benchFrames(b, 4)
	p := newRefPipeline()
	defer p.close()
	// The reference finds the worm where the tracker does.
	for _, f := range frames {
		tr.Reset()
		r := tr.Track(f)
		w, ok := p.detect(f, tr.bg.mat)
		if !ok || !r.OK {
			b.Fatalf("reference found=%v, tracker %v", ok, r.Status)
		}
		if d := math.Hypot(w.centre[0]-r.X, w.centre[1]-r.Y); d > 10 {
			b.Fatalf("reference centre %.1f px from the tracker's", d)
		}
	}
	var ft frameTimer
	b.ResetTimer()
	for i := range b.N {
		ft.begin()
		_, ok := p.detect(frames[i%len(frames)], tr.bg.mat)
		ft.end()
		if !ok {
			b.Fatal("reference pipeline found no worm")
		}
	}
	b.StopTimer()
	ft.report(b)
}
