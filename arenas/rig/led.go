package rig

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/optoloop/optoloop/arenas"
)

// LED is the driver of a rig's stimulation light. Set returns once the command has been
// delivered to the hardware (or failed); it is called from one goroutine at a time.
type LED interface {
	// Set switches the light to l. l.Intensity is in [0, 1]; 0 means the driver's fixed level.
	Set(ctx context.Context, l arenas.Light) error
	// Close releases the driver. It does not switch the light; the Arena does that first.
	Close() error
}

// LED driver names for LEDConfig.Driver.
const (
	DriverSerial  = "serial"
	DriverGPIO    = "gpio"
	DriverCommand = "command"
)

// LEDConfig selects and configures the light driver. Only the section named by Driver is used.
type LEDConfig struct {
	// Driver is "serial", "gpio" or "command".
	Driver  string        `json:"driver" yaml:"driver"`
	Serial  SerialConfig  `json:"serial" yaml:"serial"`
	GPIO    GPIOConfig    `json:"gpio" yaml:"gpio"`
	Command CommandConfig `json:"command" yaml:"command"`
}

// DefaultLEDConfig is a serial LED controller on /dev/ttyACM0 (an Arduino-style board) taking
// "1\n" and "0\n"; the other sections hold their own defaults for when Driver is changed.
func DefaultLEDConfig() LEDConfig {
	return LEDConfig{
		Driver:  DriverSerial,
		Serial:  DefaultSerialConfig(),
		GPIO:    DefaultGPIOConfig(),
		Command: DefaultCommandConfig(),
	}
}

// Validate checks the selected driver's section.
func (c LEDConfig) Validate() error {
	switch c.Driver {
	case DriverSerial:
		return c.Serial.Validate()
	case DriverGPIO:
		return c.GPIO.Validate()
	case DriverCommand:
		return c.Command.Validate()
	default:
		return fmt.Errorf("led: driver %q unknown (want serial, gpio or command)", c.Driver)
	}
}

// OpenLED opens the driver c selects. The light's state is not changed.
func OpenLED(c LEDConfig) (LED, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch c.Driver {
	case DriverSerial:
		return OpenSerial(c.Serial)
	case DriverGPIO:
		return OpenGPIO(c.GPIO)
	default:
		return NewCommand(c.Command)
	}
}

// checkLight rejects an intensity outside [0, 1].
func checkLight(l arenas.Light) error {
	if !(l.Intensity >= 0 && l.Intensity <= 1) {
		return fmt.Errorf("light intensity %v outside [0, 1]", l.Intensity)
	}
	return nil
}

// expand replaces {level} with the intensity scaled to 0..maxLevel (rounded) and {fraction} with
// the intensity in [0, 1] (three decimals).
func expand(s string, intensity float64, maxLevel int) string {
	level := int(math.Round(intensity * float64(maxLevel)))
	return strings.NewReplacer(
		"{level}", strconv.Itoa(level),
		"{fraction}", strconv.FormatFloat(intensity, 'f', 3, 64),
	).Replace(s)
}
