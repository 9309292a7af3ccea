package fleet

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/episode"
	"github.com/optoloop/optoloop/live"
)

// A tile's thumbnail is the whole camera frame subsampled to at most TileWidth pixels wide,
// with an inset at (about) full resolution around the worm: at the reference rig's 540 px/cm a
// worm is ~54 px long and ~4 px wide, so in a 308 px wide view of the 2160 px frame it is a
// smudge of 8 x 1 px (a box average would fade it to the background, a stride subsample
// breaks it into dots), while the inset shows its body. The loop copies only the subsampled
// view (every k-th pixel of every k-th row: 85 000 bytes of a 4 MB frame) and the inset's crop;
// drawing and encoding happen on the publishing goroutine. Without rendering (no pixels) the
// plate is drawn schematically from the calibration, and the inset shows the pose's midline.
//
// Over the view: the plate's edge, the target (a ring of episode.WithinCM, 0.5 cm, and a
// cross; drawn from the lease's spec while the arena prepares), a ring around the worm, its
// midline and head (in the inset too); the border is blue
// while the light is on and dark while it is off; a square badge in the top left corner
// gives the arena's state (grey idle, amber leased, green running, red failed, violet
// draining).

const (
	// insetCM is the side of the inset's crop on the plate.
	insetCM = 0.2
	// insetShare is the inset's side as a share of the thumbnail's shorter side.
	insetShare = 0.36
	// withinCM is the radius of the target's ring: the metrics' "within" distance.
	withinCM = episode.WithinCM
	// bodyCM is the width the schematic worm is drawn with.
	bodyCM = 0.008
	// maxMidline bounds the midline points a tile keeps.
	maxMidline = 32
	// jpegQuality is the thumbnail's JPEG quality; lower ones are tried when a thumbnail would
	// exceed live.MaxThumbnailBytes.
	jpegQuality = 75
)

// colour names what the thumbnail draws in.
type colour int

const (
	colMidline colour = iota
	colHead
	colTarget
	colPlate
	colLocator
	colLightOn
	colLightOff
	colInset
	colBody
	colDisc
	colOutside
	colIdle
	colLeased
	colRunning
	colFailed
	colDraining
	nColours
)

// rgb is a colour's red, green and blue.
func (c colour) rgb() (r, g, b uint8) {
	switch c {
	case colMidline:
		return 0x30, 0xe0, 0x40
	case colHead:
		return 0xff, 0x30, 0x30
	case colTarget:
		return 0xff, 0x40, 0xff
	case colPlate:
		return 0x70, 0x90, 0xa8
	case colLocator:
		return 0xff, 0xd0, 0x20
	case colLightOn:
		return 0x30, 0x90, 0xff
	case colLightOff:
		return 0x28, 0x28, 0x28
	case colInset:
		return 0xf0, 0xf0, 0xf0
	case colBody:
		return 0x38, 0x38, 0x38
	case colDisc:
		return 0xc8, 0xc8, 0xc0
	case colOutside:
		return 0x40, 0x40, 0x40
	case colLeased:
		return 0xff, 0xa0, 0x00
	case colRunning:
		return 0x20, 0xc0, 0x40
	case colFailed:
		return 0xe0, 0x20, 0x20
	case colDraining:
		return 0xa0, 0x60, 0xe0
	}
	return 0x90, 0x90, 0x90 // colIdle
}

// stateColour is the badge's colour of an arena state.
func stateColour(state string) colour {
	switch state {
	case live.StateLeased:
		return colLeased
	case live.StateRunning:
		return colRunning
	case live.StateFailed:
		return colFailed
	case live.StateDraining:
		return colDraining
	}
	return colIdle
}

// ink is a colour in the thumbnail's Y'CbCr.
type ink struct{ y, cb, cr uint8 }

// geometry is how an arena's frames map onto its thumbnails; fixed for the worker's life.
type geometry struct {
	cal arenas.Calibration
	// k is the frame pixels per thumbnail pixel; w, h the thumbnail's size.
	k, w, h int
	// cropS is the side of the inset's crop in frame pixels, insetD the inset's side in
	// thumbnail pixels.
	cropS, insetD int
}

func newGeometry(cal arenas.Calibration, maxWidth int) geometry {
	g := geometry{cal: cal, k: max(1, (cal.Width+maxWidth-1)/maxWidth)}
	g.w, g.h = max(1, cal.Width/g.k), max(1, cal.Height/g.k)
	g.cropS = min(cal.Width, cal.Height, max(8, int(math.Round(insetCM*cal.PxPerCM))))
	g.insetD = max(8, int(insetShare*float64(min(g.w, g.h))))
	return g
}

// shot is one step as the loop copied it for a tile: the numbers and, for a rendered frame,
// the subsampled view and the inset's crop. Its buffers are reused from tile to tile.
type shot struct {
	gen        uint64 // the lease it belongs to (tiles.lease)
	n          uint64 // counts the shots taken
	at         int64  // unix nanoseconds when the loop took it
	index      int
	steps      int
	ok, light  bool
	latency    float64 // ms
	confidence float64
	x, y       float64
	head       [2]float64
	target     [2]float64
	mid        [maxMidline][2]float64
	nmid       int
	// rendered says view and crop hold pixels: view is w x h, crop cropS x cropS from
	// (cropX, cropY) of the frame.
	rendered     bool
	view, crop   []byte
	cropX, cropY int
}

func newShot(g geometry) *shot {
	return &shot{view: make([]byte, g.w*g.h), crop: make([]byte, g.cropS*g.cropS)}
}

// take copies what a tile needs of frame f and pose p (on the loop's goroutine: no
// allocation, ~0.1 ms for a reference frame).
func (s *shot) take(g geometry, f *arenas.Frame, p *arenas.Pose, ok bool) {
	s.ok, s.confidence, s.x, s.y = ok, p.Confidence, p.X, p.Y
	s.nmid = 0
	if ok {
		s.head = p.Head
		if n := len(p.Midline); n > 0 {
			m := min(n, maxMidline)
			for i := range m {
				j := i
				if n > maxMidline {
					j = i * (n - 1) / (maxMidline - 1)
				}
				s.mid[i] = p.Midline[j]
			}
			s.nmid = m
			if s.head == ([2]float64{}) {
				s.head = s.mid[0]
			}
		}
	}
	c := g.cal
	s.rendered = f.Pix != nil && f.Width == c.Width && f.Height == c.Height && len(f.Pix) >= c.Width*c.Height
	if !s.rendered {
		return
	}
	k, off := g.k, g.k/2
	for oy := range g.h {
		row := f.Pix[(oy*k+off)*c.Width:]
		out := s.view[oy*g.w : (oy+1)*g.w]
		for ox := range out {
			out[ox] = row[ox*k+off]
		}
	}
	cx, cy := c.CenterX, c.CenterY
	if ok {
		cx, cy = p.X, p.Y
	}
	s.cropX = min(max(0, int(cx)-g.cropS/2), c.Width-g.cropS)
	s.cropY = min(max(0, int(cy)-g.cropS/2), c.Height-g.cropS)
	for r := range g.cropS {
		src := f.Pix[(s.cropY+r)*c.Width+s.cropX:]
		copy(s.crop[r*g.cropS:(r+1)*g.cropS], src[:g.cropS])
	}
}

// painter draws and encodes thumbnails (the publishing goroutine's, reused from tile to
// tile). It draws in Y'CbCr 4:2:0, what the JPEG encoder takes without converting (an RGBA
// image costs the encoder a third more): a grey frame is its luma, the overlay's colours are
// set at half resolution in chroma.
type painter struct {
	g     geometry
	img   *image.YCbCr
	plate *image.YCbCr // the schematic plate, drawn once
	buf   bytes.Buffer
	inks  [nColours]ink
	b     int     // the border's width
	sc    float64 // thumbnail pixels per frame pixel
	// clip bounds what set paints: the whole image, or the inset while it is drawn.
	clip image.Rectangle
}

func newPainter(g geometry) *painter {
	r := image.Rect(0, 0, g.w, g.h)
	p := &painter{g: g, img: image.NewYCbCr(r, image.YCbCrSubsampleRatio420), b: max(3, g.w/50), sc: 1 / float64(g.k), clip: r}
	for c := range nColours {
		y, cb, cr := color.RGBToYCbCr(c.rgb())
		p.inks[c] = ink{y, cb, cr}
	}
	cx, cy := g.cal.CenterX*p.sc, g.cal.CenterY*p.sc
	r2 := g.cal.PlateRadius * p.sc
	r2 *= r2
	for y := range g.h {
		for x := range g.w {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			c := colOutside
			if dx*dx+dy*dy <= r2 {
				c = colDisc
			}
			p.set(x, y, c)
		}
	}
	p.plate = &image.YCbCr{Y: bytes.Clone(p.img.Y), Cb: bytes.Clone(p.img.Cb), Cr: bytes.Clone(p.img.Cr)}
	return p
}

// draw paints s (nil: the plate alone) for an arena in state with the light as given, and the
// target when it is not nil (an episode without one, collection, draws none; with a shot, the
// shot's target is drawn).
func (p *painter) draw(s *shot, target *[2]float64, state string, light bool) {
	g, img := p.g, p.img
	if s != nil && s.rendered {
		copy(img.Y, s.view) // YStride is the width
		for i := range img.Cb {
			img.Cb[i], img.Cr[i] = 0x80, 0x80
		}
	} else {
		copy(img.Y, p.plate.Y)
		copy(img.Cb, p.plate.Cb)
		copy(img.Cr, p.plate.Cr)
	}
	sc := p.sc
	p.circle(g.cal.CenterX*sc, g.cal.CenterY*sc, g.cal.PlateRadius*sc, colPlate)
	if s != nil && target != nil {
		target = &s.target
	}
	if target != nil {
		tx, ty := target[0]*sc, target[1]*sc
		p.circle(tx, ty, withinCM*g.cal.PxPerCM*sc, colTarget)
		p.line(tx-4, ty, tx+4, ty, colTarget, 1)
		p.line(tx, ty-4, tx, ty+4, colTarget, 1)
	}
	if s != nil && s.ok {
		wx, wy := s.x*sc, s.y*sc
		p.circle(wx, wy, max(6, 0.1*g.cal.PxPerCM*sc), colLocator)
		p.worm(s, 0, 0, sc, 1, false, false)
		p.inset(s, wx, wy, target != nil)
	}
	p.border(light)
	bs := 3 * p.b
	p.rect(p.b, p.b, bs, bs, stateColour(state))
}

// inset draws the crop around the worm (or, without pixels, the worm schematically) in the
// corner of the thumbnail away from it, with the target's ring when targeted.
func (p *painter) inset(s *shot, wx, wy float64, targeted bool) {
	g := p.g
	d, m := g.insetD, p.b+2
	x0, y0 := g.w-m-d, g.h-m-d
	if wx > float64(g.w)/2 {
		x0 = m
	}
	if wy > float64(g.h)/2 {
		y0 = m + 3*p.b + 2 // below the state badge
	}
	if x0 < 0 || y0 < 0 || x0+d > g.w || y0+d > g.h {
		return
	}
	cropX, cropY := s.cropX, s.cropY
	if !s.rendered {
		cropX, cropY = int(s.x)-g.cropS/2, int(s.y)-g.cropS/2
	}
	p.clip = image.Rect(x0, y0, x0+d, y0+d)
	if s.rendered {
		for v := range d {
			row := p.img.Y[(y0+v)*p.img.YStride+x0:]
			src := s.crop[(v*g.cropS/d)*g.cropS:]
			for u := range d {
				row[u] = src[u*g.cropS/d]
			}
		}
		p.neutral(p.clip)
	} else {
		p.rect(x0, y0, d, d, colDisc)
	}
	sc := float64(d) / float64(g.cropS)
	ox, oy := float64(x0)-float64(cropX)*sc, float64(y0)-float64(cropY)*sc
	if targeted {
		p.circle(ox+s.target[0]*sc, oy+s.target[1]*sc, withinCM*g.cal.PxPerCM*sc, colTarget)
	}
	p.worm(s, ox, oy, sc, max(1, int(math.Round(bodyCM*g.cal.PxPerCM*sc))), !s.rendered, s.rendered)
	p.frame(p.clip, colInset)
	p.clip = p.img.Rect
}

// worm draws the midline and head of s mapped by (x*sc+ox, y*sc+oy). body, when set, first
// draws the body itself (a schematic worm, thick and dark); dotted draws the midline as every
// other point, so that the body it lies on shows between them (a rendered inset).
func (p *painter) worm(s *shot, ox, oy, sc float64, width int, body, dotted bool) {
	pt := func(q [2]float64) (float64, float64) { return q[0]*sc + ox, q[1]*sc + oy }
	if body {
		for i := 1; i < s.nmid; i++ {
			x0, y0 := pt(s.mid[i-1])
			x1, y1 := pt(s.mid[i])
			p.line(x0, y0, x1, y1, colBody, width)
		}
	}
	for i := 1; i < s.nmid; i++ {
		x0, y0 := pt(s.mid[i-1])
		x1, y1 := pt(s.mid[i])
		if dotted {
			if i%2 == 0 {
				p.set(int(x1), int(y1), colMidline)
			}
			continue
		}
		p.line(x0, y0, x1, y1, colMidline, 1)
	}
	hx, hy := pt(s.head)
	r := max(1, min(3, width))
	p.rect(int(hx)-r/2-1, int(hy)-r/2-1, r+2, r+2, colHead)
}

// encode returns the thumbnail as a new JPEG of at most live.MaxThumbnailBytes (nil when even
// the lowest quality tried exceeds it).
func (p *painter) encode() []byte {
	for q := jpegQuality; q >= 15; q -= 20 {
		p.buf.Reset()
		if err := jpeg.Encode(&p.buf, p.img, &jpeg.Options{Quality: q}); err != nil {
			return nil // writing to a bytes.Buffer does not fail
		}
		if p.buf.Len() <= live.MaxThumbnailBytes {
			return bytes.Clone(p.buf.Bytes())
		}
	}
	return nil
}

// set paints one pixel inside clip (its chroma is shared with its 2x2 block).
func (p *painter) set(x, y int, c colour) {
	if !(image.Point{x, y}.In(p.clip)) {
		return
	}
	k := p.inks[c]
	img := p.img
	img.Y[y*img.YStride+x] = k.y
	ci := (y/2)*img.CStride + x/2
	img.Cb[ci], img.Cr[ci] = k.cb, k.cr
}

// neutral makes r's chroma grey (a grey picture drawn over colours).
func (p *painter) neutral(r image.Rectangle) {
	img := p.img
	for y := r.Min.Y / 2; y < (r.Max.Y+1)/2; y++ {
		for x := r.Min.X / 2; x < (r.Max.X+1)/2; x++ {
			ci := y*img.CStride + x
			img.Cb[ci], img.Cr[ci] = 0x80, 0x80
		}
	}
}

func (p *painter) rect(x, y, w, h int, c colour) {
	for yy := y; yy < y+h; yy++ {
		for xx := x; xx < x+w; xx++ {
			p.set(xx, yy, c)
		}
	}
}

// line draws from (x0, y0) to (x1, y1) with square dots of side width.
func (p *painter) line(x0, y0, x1, y1 float64, c colour, width int) {
	n := int(math.Ceil(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))))
	h := width / 2
	for i := 0; i <= n; i++ {
		t := 0.0
		if n > 0 {
			t = float64(i) / float64(n)
		}
		x, y := int(math.Floor(x0+t*(x1-x0))), int(math.Floor(y0+t*(y1-y0)))
		if width == 1 {
			p.set(x, y, c)
			continue
		}
		p.rect(x-h, y-h, width, width, c)
	}
}

// circle draws a 1 px ring of radius r around (cx, cy).
func (p *painter) circle(cx, cy, r float64, c colour) {
	n := max(8, int(2*math.Pi*r*1.5))
	for i := range n {
		s, co := math.Sincos(2 * math.Pi * float64(i) / float64(n))
		p.set(int(math.Floor(cx+r*co)), int(math.Floor(cy+r*s)), c)
	}
}

// frame draws a 1 px rectangle just inside r.
func (p *painter) frame(r image.Rectangle, c colour) {
	for x := r.Min.X; x < r.Max.X; x++ {
		p.set(x, r.Min.Y, c)
		p.set(x, r.Max.Y-1, c)
	}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		p.set(r.Min.X, y, c)
		p.set(r.Max.X-1, y, c)
	}
}

// border paints the light state around the thumbnail.
func (p *painter) border(on bool) {
	c := colLightOff
	if on {
		c = colLightOn
	}
	w, h, b := p.g.w, p.g.h, p.b
	p.rect(0, 0, w, b, c)
	p.rect(0, h-b, w, b, c)
	p.rect(0, 0, b, h, c)
	p.rect(w-b, 0, b, h, c)
}
