package rig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/optoloop/optoloop/arenas"
)

// SerialConfig configures a light controller on a serial line (a USB-serial board or a tty).
type SerialConfig struct {
	// Device is the tty's path, e.g. /dev/ttyACM0. It is opened read/write.
	Device string `json:"device" yaml:"device"`
	// Baud is the line speed; when the device is a tty it is put in raw mode at this speed
	// (one of the standard rates 1200..4000000).
	Baud int `json:"baud" yaml:"baud"`
	// On and Off are the commands written to switch the light, e.g. "1\n" and "0\n".
	On  string `json:"on" yaml:"on"`
	Off string `json:"off" yaml:"off"`
	// Intensity, when set, is written instead of On for a command with an intensity above 0:
	// "{level}" is replaced by the intensity scaled to 0..MaxLevel and "{fraction}" by the
	// intensity in [0, 1], e.g. "P{level}\n".
	Intensity string `json:"intensity" yaml:"intensity"`
	// MaxLevel is the controller's full-scale level for {level} (e.g. 255 for 8-bit PWM).
	MaxLevel int `json:"max_level" yaml:"max_level"`
	// Reply, when set, is the line the controller answers to every command (e.g. "OK"); a
	// different answer or none within Timeout is an error.
	Reply string `json:"reply" yaml:"reply"`
	// Timeout bounds one command (write and reply), also when the caller's context has none.
	Timeout Duration `json:"timeout" yaml:"timeout"`
}

// DefaultSerialConfig is /dev/ttyACM0 at 115200 baud taking "1\n" and "0\n", no reply, 1 s.
func DefaultSerialConfig() SerialConfig {
	return SerialConfig{
		Device:   "/dev/ttyACM0",
		Baud:     115200,
		On:       "1\n",
		Off:      "0\n",
		MaxLevel: 255,
		Timeout:  Duration(time.Second),
	}
}

// Validate reports the first unusable field.
func (c SerialConfig) Validate() error {
	switch {
	case c.Device == "":
		return errors.New("led serial: device is empty")
	case c.On == "" || c.Off == "":
		return errors.New("led serial: on and off commands must be set")
	case c.On == c.Off:
		return fmt.Errorf("led serial: on and off commands are both %q", c.On)
	case c.Baud < 0 || (c.Baud > 0 && baudFlag(c.Baud) == 0):
		return fmt.Errorf("led serial: baud %d is not a standard rate", c.Baud)
	case c.MaxLevel < 1:
		return fmt.Errorf("led serial: max_level %d must be at least 1", c.MaxLevel)
	case c.Timeout <= 0:
		return fmt.Errorf("led serial: timeout %v must be positive", c.Timeout)
	}
	return nil
}

// Serial drives a light controller on a serial line.
type Serial struct {
	cfg SerialConfig
	f   *os.File
	rd  *bufio.Reader
}

// OpenSerial opens the device read/write. A tty is set to raw mode at cfg.Baud.
func OpenSerial(cfg SerialConfig) (*Serial, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cfg.Device, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("led serial: open %s: %w", cfg.Device, err)
	}
	if err := makeRaw(f, cfg.Baud); err != nil {
		f.Close()
		return nil, fmt.Errorf("led serial: configure %s: %w", cfg.Device, err)
	}
	return &Serial{cfg: cfg, f: f, rd: bufio.NewReader(f)}, nil
}

// makeRaw puts a tty in raw mode (8N1, no echo, no line editing, no output processing) at the
// given speed; other files (pipes, plain files, /dev/null) are left alone.
func makeRaw(f *os.File, baud int) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = sc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			return // not a tty
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		if baud > 0 {
			b := baudFlag(baud)
			t.Cflag &^= unix.CBAUD
			t.Cflag |= b
			t.Ispeed, t.Ospeed = b, b
		}
		opErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	return opErr
}

func baudFlag(b int) uint32 {
	switch b {
	case 1200:
		return unix.B1200
	case 2400:
		return unix.B2400
	case 4800:
		return unix.B4800
	case 9600:
		return unix.B9600
	case 19200:
		return unix.B19200
	case 38400:
		return unix.B38400
	case 57600:
		return unix.B57600
	case 115200:
		return unix.B115200
	case 230400:
		return unix.B230400
	case 460800:
		return unix.B460800
	case 921600:
		return unix.B921600
	case 1000000:
		return unix.B1000000
	case 2000000:
		return unix.B2000000
	case 4000000:
		return unix.B4000000
	}
	return 0
}

// Command returns the bytes Set writes for l.
func (s *Serial) Command(l arenas.Light) string {
	switch {
	case !l.On:
		return s.cfg.Off
	case l.Intensity > 0 && s.cfg.Intensity != "":
		return expand(s.cfg.Intensity, l.Intensity, s.cfg.MaxLevel)
	default:
		return s.cfg.On
	}
}

// Set writes the command for l and, when a reply is configured, waits for it.
func (s *Serial) Set(ctx context.Context, l arenas.Light) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkLight(l); err != nil {
		return fmt.Errorf("led serial: %w", err)
	}
	deadline := time.Now().Add(time.Duration(s.cfg.Timeout))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Deadlines work on ttys, pipes and sockets; plain files never block.
	if err := s.f.SetDeadline(deadline); err != nil && !errors.Is(err, os.ErrNoDeadline) {
		return fmt.Errorf("led serial: %s: %w", s.cfg.Device, err)
	}
	cmd := s.Command(l)
	if s.cfg.Reply != "" {
		s.discardInput() // so that the next line read answers this command
	}
	if _, err := s.f.Write([]byte(cmd)); err != nil {
		return fmt.Errorf("led serial: write %q to %s: %w", cmd, s.cfg.Device, err)
	}
	if s.cfg.Reply == "" {
		return nil
	}
	line, err := s.rd.ReadString('\n')
	if err != nil {
		return fmt.Errorf("led serial: no reply from %s to %q: %w", s.cfg.Device, cmd, err)
	}
	if got := strings.TrimRight(line, "\r\n"); got != s.cfg.Reply {
		return fmt.Errorf("led serial: %s answered %q to %q, want %q", s.cfg.Device, got, cmd, s.cfg.Reply)
	}
	return nil
}

// discardInput drops whatever the controller sent unasked (a tty's input queue and our buffer).
func (s *Serial) discardInput() {
	s.rd.Reset(s.f)
	if sc, err := s.f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_ = unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCIFLUSH) // fails harmlessly on non-ttys
		})
	}
}

// Close closes the device.
func (s *Serial) Close() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("led serial: close %s: %w", s.cfg.Device, err)
	}
	return nil
}
