// Package dashboard serves the live page of a cluster: the arenas (one tile per registered
// arena, with its latest thumbnail and the numbers of the episode it runs), the experiments
// (progress bars per phase, failures, the per-line table, the report), the learners (each
// training task's learning curves and parameter versions), and a page per episode (its
// trajectory on the plate, metrics, trace and frames). The page is plain HTML, CSS and
// JavaScript embedded in the binary (no build step, no CDN); charts are drawn client-side as
// SVG from JSON.
//
// # Routes
//
// Everything is under /ui/; / redirects there.
//
//	GET  /ui/                          the page (index.html, app.js, app.css)
//	GET  /ui/login, POST /ui/login     sign in with a coordinator token (form field "token")
//	POST /ui/logout                    sign out (CSRF token in X-CSRF-Token or the form's "csrf")
//	GET  /ui/api/session               {"role", "operator", "csrf"} of the session
//	GET  /ui/api/snapshot              the current Snapshot (JSON)
//	GET  /ui/events                    server-sent events: "snapshot" per snapshot, comments between
//	GET  /ui/thumb/{arena}             the arena's JPEG, 404 when it has none (?soft=1: 204)
//	POST /ui/api/experiments/{id}/cancel   {"reason"}: cancel (operator)
//	POST /ui/api/workers/{id}/drain        {"drain": bool}: drain or resume (operator)
//	GET  /ui/episodes/{item}           the episode page
//	GET  /ui/api/episodes/{item}/track.json   the episode's stored track
//	GET  /ui/experiments/{id}/report/  report.html of the experiment (and the run folder's files)
//
// # Sessions and roles
//
// Every page and API call needs a session; the page's static files and the login form do
// not. A user signs in with a coordinator token: the dashboard asks the coordinator whose it
// is (api.Client.WhoAmI with api.WithToken), and any role (viewer, operator, cluster) gets a
// session: a random 32-byte id in an HttpOnly, SameSite=Strict cookie (Secure over TLS),
// kept in memory with the role and the token. The token is never logged, never put in a URL
// and never sent to the page. Each session has a CSRF token that the page sends in the
// X-CSRF-Token header with every POST; cross-origin POSTs are refused besides
// (http.CrossOriginProtection). Cancel and drain need an operator's (or the cluster's) role
// here, and the dashboard forwards them with the user's own token, so the coordinator checks
// the role again; a viewer gets 403 and nothing changes. The buttons are hidden for viewers,
// but the server's check is what counts.
//
// # Snapshots
//
// One shared loop (Server.Run) builds a Snapshot every Config.Poll while at least one event
// stream is open, and every stream gets the same encoded snapshot; a stream whose client
// reads slowly skips snapshots instead of buffering them (it holds one at most). A snapshot
// merges the coordinator's workers with the live tiles by arena id (a worker without a tile is
// stale; one the coordinator has not heard from for Config.LostAfter is lost; a drained one
// says so; a tile without a worker is unregistered), the experiments with their progress
// (running ones read every poll, finished ones once per state), the training tasks with their
// holders and curves (downsampled to Config.CurvePoints), and the learners. When a
// coordinator call fails, its part keeps the last data read and the snapshot says the
// coordinator is stale (unreachable when every call failed); the client fails over between
// nodes, so the loss of the leader does not stop the updates. Workers are not called lost
// for the coordinator's silence: while its data are stale they are aged as of its last
// answer.
//
// # Report
//
// The report link exports the experiment's run folder into Config.WorkDir (fleet.Export,
// then report.Write) when the experiment changed since the last export, one export of an
// experiment at a time, and serves the folder's files only (os.Root), with a content security
// policy that sandboxes them. A done experiment has a report link; a running or failed one a
// partial report of what exists.
//
// # Selectors
//
// The page keeps stable ids and data attributes for browser tests (app.js lists them too):
//
//	body[data-role][data-operator][data-seq][data-apply-ms]
//	#cluster[data-reachable][data-stale], #connection[data-state="live|reconnecting"],
//	#leader[data-leader], #nodes .node[data-node][data-state][data-reachable]
//	#arenas [data-arena="ID"][data-worker][data-state][data-stale][data-lost][data-draining][data-seq]
//	    .arena-id (the id as text), img.thumb, .placeholder, .badge.state, .flag,
//	    a.episode-link, .progress[data-step][data-steps], [data-distance] (cm, "" when not
//	    tracked), [data-confidence], [data-latency-ms], [data-light="on|off"],
//	    button.drain[data-worker]
//	#experiments [data-experiment="ID"][data-status][data-phase]
//	    [data-phase="collect|train|evaluate|cross_evaluate|transfer"] .bar.items[data-done][data-total]
//	    (episodes; tasks in train) and .bar.updates[data-done][data-total] (train),
//	    ul.failures li[data-item], table.lines tbody tr[data-line][data-kind],
//	    a.report-link (done), a.partial-report (running, failed),
//	    button.cancel -> .cancel-form input.cancel-reason, button.cancel-confirm,
//	    .action-error
//	#learners li[data-learner][data-lost]
//	#tasks [data-task="ID"][data-experiment][data-line][data-state]
//	    .bar.updates[data-done][data-total], .versions[data-versions="1 2 3"][data-final],
//	    svg.chart[data-series="critic_loss|entropy|alpha"][data-points]
//	episode page: #item[data-item][data-state], svg.plate (polyline.path, polyline.lit,
//	    circle.target, circle.target-zone), code[data-trace-id], a.trace-link,
//	    a.track-json, table.frames, #track-note
//
// window.optoloop.update(snapshot) applies a snapshot and returns its time in ms;
// window.optoloop.stop() closes the event stream.
//
// A browser test signs in through the form, as a person does (chromedp):
//
//	chromedp.Do(ctx,
//		chromedp.Navigate(base+"/ui/login"),
//		chromedp.SendKeys(chromedp.CSS("#token"), token),
//		chromedp.Submit(chromedp.CSS("#token")),
//		chromedp.WaitVisible(chromedp.CSS("#arenas")),
//	)
package dashboard
