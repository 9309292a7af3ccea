package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/optoloop/optoloop/arenas"
)

// CommandConfig configures a light switched by running a program, e.g. libgpiod's gpioset or a
// vendor's LED tool. Every argument may hold "{level}" (intensity scaled to 0..MaxLevel) and
// "{fraction}" (intensity in [0, 1]).
type CommandConfig struct {
	// On and Off are the argument vectors (program first) that switch the light.
	On  []string `json:"on" yaml:"on"`
	Off []string `json:"off" yaml:"off"`
	// Intensity, when set, runs instead of On for a command with an intensity above 0.
	Intensity []string `json:"intensity,omitempty" yaml:"intensity,omitempty"`
	// MaxLevel is the full-scale level for {level}.
	MaxLevel int `json:"max_level" yaml:"max_level"`
	// Timeout bounds one run; a program still running then is killed and the command fails.
	Timeout Duration `json:"timeout" yaml:"timeout"`
}

// DefaultCommandConfig is libgpiod's gpioset on gpiochip0 line 17, 2 s per run.
func DefaultCommandConfig() CommandConfig {
	return CommandConfig{
		On:       []string{"gpioset", "gpiochip0", "17=1"},
		Off:      []string{"gpioset", "gpiochip0", "17=0"},
		MaxLevel: 255,
		Timeout:  Duration(2 * time.Second),
	}
}

// Validate reports the first unusable field.
func (c CommandConfig) Validate() error {
	switch {
	case len(c.On) == 0 || c.On[0] == "":
		return errors.New("led command: on has no program")
	case len(c.Off) == 0 || c.Off[0] == "":
		return errors.New("led command: off has no program")
	case len(c.Intensity) > 0 && c.Intensity[0] == "":
		return errors.New("led command: intensity has no program")
	case c.MaxLevel < 1:
		return fmt.Errorf("led command: max_level %d must be at least 1", c.MaxLevel)
	case c.Timeout <= 0:
		return fmt.Errorf("led command: timeout %v must be positive", c.Timeout)
	}
	return nil
}

// Command drives a light by running programs.
type Command struct {
	cfg CommandConfig
}

// NewCommand checks that the programs can be found.
func NewCommand(cfg CommandConfig) (*Command, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, argv := range [][]string{cfg.On, cfg.Off, cfg.Intensity} {
		if len(argv) == 0 {
			continue
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return nil, fmt.Errorf("led command: %w", err)
		}
	}
	return &Command{cfg: cfg}, nil
}

// Argv returns the command line Set runs for l.
func (c *Command) Argv(l arenas.Light) []string {
	src := c.cfg.On
	switch {
	case !l.On:
		src = c.cfg.Off
	case l.Intensity > 0 && len(c.cfg.Intensity) > 0:
		src = c.cfg.Intensity
	}
	argv := make([]string, len(src))
	for i, a := range src {
		argv[i] = expand(a, l.Intensity, c.cfg.MaxLevel)
	}
	return argv
}

// Set runs the program for l and fails when it exits non-zero or outlives the timeout.
func (c *Command) Set(ctx context.Context, l arenas.Light) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkLight(l); err != nil {
		return fmt.Errorf("led command: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.cfg.Timeout))
	defer cancel()
	argv := c.Argv(l)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 200 {
			msg = msg[len(msg)-200:]
		}
		if msg != "" {
			return fmt.Errorf("led command: %s: %w: %s", strings.Join(argv, " "), err, msg)
		}
		return fmt.Errorf("led command: %s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// Close does nothing.
func (c *Command) Close() error { return nil }
