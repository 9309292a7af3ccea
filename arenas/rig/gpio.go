package rig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/optoloop/optoloop/arenas"
)

// GPIOConfig configures a light switched by a GPIO value file (sysfs
// /sys/class/gpio/gpioN/value, or any file-backed switch).
type GPIOConfig struct {
	// Path is the value file; it must exist (export the pin and set its direction to "out"
	// first). Writing "1" switches the light on, "0" off (inverted when ActiveLow).
	Path string `json:"path" yaml:"path"`
	// ActiveLow inverts the written value (a driver that lights on a low level).
	ActiveLow bool `json:"active_low" yaml:"active_low"`
	// Verify reads the value back after each write and fails when it differs.
	Verify bool `json:"verify" yaml:"verify"`
}

// DefaultGPIOConfig is sysfs GPIO 17, active high, verified.
func DefaultGPIOConfig() GPIOConfig {
	return GPIOConfig{Path: "/sys/class/gpio/gpio17/value", Verify: true}
}

// Validate reports the first unusable field.
func (c GPIOConfig) Validate() error {
	if c.Path == "" {
		return errors.New("led gpio: path is empty")
	}
	return nil
}

// GPIO drives a light through a GPIO value file. It has on/off only: any intensity means on.
type GPIO struct {
	cfg GPIOConfig
}

// OpenGPIO checks that the value file exists and is writable; the light is not changed.
func OpenGPIO(cfg GPIOConfig) (*GPIO, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("led gpio: open %s: %w", cfg.Path, err)
	}
	f.Close()
	return &GPIO{cfg: cfg}, nil
}

func (g *GPIO) value(on bool) string {
	if on != g.cfg.ActiveLow {
		return "1"
	}
	return "0"
}

// Set writes the value for l (and reads it back when configured).
func (g *GPIO) Set(ctx context.Context, l arenas.Light) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkLight(l); err != nil {
		return fmt.Errorf("led gpio: %w", err)
	}
	v := g.value(l.On)
	f, err := os.OpenFile(g.cfg.Path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("led gpio: open %s: %w", g.cfg.Path, err)
	}
	_, werr := f.Write([]byte(v))
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("led gpio: write %s to %s: %w", v, g.cfg.Path, err)
	}
	if !g.cfg.Verify {
		return nil
	}
	b, err := os.ReadFile(g.cfg.Path)
	if err != nil {
		return fmt.Errorf("led gpio: read back %s: %w", g.cfg.Path, err)
	}
	if got := strings.TrimSpace(string(b)); got != v {
		return fmt.Errorf("led gpio: %s reads %q after writing %s", g.cfg.Path, got, v)
	}
	return nil
}

// Close does nothing: the value file is opened per command.
func (g *GPIO) Close() error { return nil }
