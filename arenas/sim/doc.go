// Package sim is the simulated arena: one C. elegans on an agar plate, a camera and an
// optogenetic light, implementing arenas.Arena and arenas.Poser.
//
// The worm (Model) is a 50-point midline sliding along its own track (follow-the-leader) under
// a travelling body wave, with behavioural states (forward, reversal, omega turn, pause, shallow
// turns), a slowly drifting turning bias, plate-edge avoidance, per-animal variation,
// habituation and tiring. A transgenic line (Line, from the embedded catalogue lines.yaml or a
// user's file via LoadCatalogue) modulates that behaviour while the light is on. Arena renders
// frames through arenas/sim/render, or skips rendering (Config.NoRender: frames carry a nil Pix
// and only Pose tells where the worm is). Episodes run through package station (arena, tracker
// and worker loop). DESIGN.md describes the model, its sources and its calibration against the
// reference study.
package sim
