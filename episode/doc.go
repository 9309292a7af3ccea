// Package episode holds what an episode needs independently of where the worm lives (simulator
// or real rig): light schedules for fixed policies (none, always, random as in the reference's
// data collection), targets, and the episode metrics computed from per-frame records.
//
// Positions are pixels in image axes (x right, y down); a calibration's px-per-cm converts them.
package episode
