// Package episode is the one vocabulary of episodes, independent of where the worm lives
// (simulator or real rig) and of who schedules it (coordinator.Local or the Raft cluster): the
// kinds of episode, the typed episode spec that a coordinator item carries and a station runs,
// the typed outcome a worker reports, light schedules for fixed policies (none, always, random
// as in the reference's data collection), targets, and the metrics computed from per-frame
// records.
//
// Positions are pixels in image axes (x right, y down); a calibration's px-per-cm converts them.
package episode
