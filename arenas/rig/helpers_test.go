package rig

import (
	"bufio"
	"image"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"
	"golang.org/x/sys/unix"

	"github.com/optoloop/optoloop/arenas"
	"github.com/optoloop/optoloop/arenas/sim/render"
)

// testCal is a small rig: 160x144 frames at 40 px/cm (the worm is ~4 px long).
func testCal() arenas.Calibration {
	return arenas.Calibration{
		PxPerCM: 40, CenterX: 80, CenterY: 72, PlateRadius: 70,
		Width: 160, Height: 144, FramePeriod: time.Second / 3,
	}
}

// writeVideo renders n frames of a worm crawling across the plate with the simulated camera
// and writes them to path with OpenCV's VideoWriter (MJPG). scale enlarges the written frames
// (the rig must resize them back); color writes 3-channel frames.
func writeVideo(t *testing.T, path string, cal arenas.Calibration, n, scale int, color bool) {
	t.Helper()
	cfg := render.DefaultConfig(cal)
	cfg.Seed = 5
	cam, err := render.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, h := cal.Width*scale, cal.Height*scale
	vw, err := gocv.VideoWriterFile(path, "MJPG", 15, w, h, color)
	if err != nil {
		t.Fatal(err)
	}
	if !vw.IsOpened() {
		t.Fatalf("VideoWriter could not open %s", path)
	}
	pix := make([]byte, cal.Width*cal.Height)
	for i := 0; i < n; i++ {
		cam.Render(pix, crawlingWorm(cal, i), i%4 >= 2)
		m, err := gocv.NewMatFromBytes(cal.Height, cal.Width, gocv.MatTypeCV8UC1, pix)
		if err != nil {
			t.Fatal(err)
		}
		out := m
		if scale != 1 {
			out = gocv.NewMat()
			gocv.Resize(m, &out, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
		}
		if color {
			c := gocv.NewMat()
			gocv.CvtColor(out, &c, gocv.ColorGrayToBGR)
			if err := vw.Write(c); err != nil {
				t.Fatal(err)
			}
			c.Close()
		} else if err := vw.Write(out); err != nil {
			t.Fatal(err)
		}
		if scale != 1 {
			out.Close()
		}
		m.Close()
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("video %s not written: %v", path, err)
	}
}

// crawlingWorm is a worm moving 1 px per frame to the right from left of the plate centre,
// scaled to the calibration (about 1 mm long).
func crawlingWorm(cal arenas.Calibration, i int) render.Worm {
	const n = 30
	L := math.Max(0.1*cal.PxPerCM, 12)
	wd := math.Max(L/12, 2.5)
	w := render.Worm{Midline: make([][2]float64, n), Width: make([]float64, n)}
	x0 := cal.CenterX - 20 + float64(i)
	for k := 0; k < n; k++ {
		u := float64(k) / (n - 1)
		w.Midline[k] = [2]float64{x0 - u*L, cal.CenterY + 2*math.Sin(2*math.Pi*u/0.65+float64(i)/3)}
		w.Width[k] = wd * math.Sqrt(math.Sin(math.Pi*u))
	}
	return w
}

// gpioFile is a file-backed GPIO value file holding "0".
func gpioFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// gpioState reads a GPIO value file as a light state (active high).
func gpioState(t *testing.T, path string) arenas.Light {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
		return arenas.Light{}
	}
	return arenas.Light{On: strings.TrimSpace(string(b)) == "1"}
}

// fakeLEDBoard is a light controller on the far side of a pseudo-terminal: it reads command
// lines, records the light state and answers each with reply.
type fakeLEDBoard struct {
	Device string // the tty path the rig opens

	mu       sync.Mutex
	on       bool
	commands []string
	reply    string
	master   *os.File
}

func newFakeLEDBoard(t *testing.T, reply string) *fakeLEDBoard {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	sc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioErr error
	if err := sc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	}); err != nil || ioErr != nil {
		t.Fatalf("pty set-up: %v %v", err, ioErr)
	}
	b := &fakeLEDBoard{Device: "/dev/pts/" + strconv.Itoa(n), reply: reply, master: m}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rd := bufio.NewReader(m)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimRight(line, "\n")
			b.mu.Lock()
			b.commands = append(b.commands, cmd)
			switch cmd {
			case "1":
				b.on = true
			case "0":
				b.on = false
			default:
				b.on = strings.HasPrefix(cmd, "P") && cmd != "P0"
			}
			r := b.reply
			b.mu.Unlock()
			if r != "" {
				if _, err := m.Write([]byte(r + "\n")); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		m.Close()
		<-done
	})
	return b
}

func (b *fakeLEDBoard) state() arenas.Light {
	b.mu.Lock()
	defer b.mu.Unlock()
	return arenas.Light{On: b.on}
}

func (b *fakeLEDBoard) log() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.commands...)
}

func (b *fakeLEDBoard) setReply(r string) {
	b.mu.Lock()
	b.reply = r
	b.mu.Unlock()
}

// fakeClock is a Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan struct{} // receives a value whenever After registers a waiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), added: make(chan struct{}, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	select {
	case c.added <- struct{}{}:
	default:
	}
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}
