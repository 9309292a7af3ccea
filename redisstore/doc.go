// Package redisstore holds the Redis implementations of the stores the fleet roles consume
// (package fleet): one *Store is a fleet.Replay, fleet.Params, fleet.Tracks and
// fleet.Checkpoints, with the semantics of package memstore (idempotent appends, versions
// published once, copies in and out, fleet.ErrNotFound for absent keys), for a cluster whose
// workers and learners run in separate processes. It is also the live store (live.Publisher
// and live.Reader) the roles publish tiles and learning curves to and the dashboard reads.
//
// # Keys
//
// Every key starts with the prefix (Config.Prefix, default "optoloop") and the experiment;
// ':' and '%' in a part are written %3A and %25, so no two names share a key.
//
//	{prefix}:{exp}:replay:{line}           stream: one entry per chunk, in append order, fields
//	                                       episode, token, seq, policy_version, traceparent,
//	                                       records (binary: encodeRecords)
//	{prefix}:{exp}:replay:{line}:seen      set of "token seq episode" of the chunks stored
//	{prefix}:{exp}:params:{line}:{version} hash: blob, sha256 (hex, checked by Fetch),
//	                                       traceparent (of the publishing span, if traced)
//	{prefix}:{exp}:params:{line}:latest    string: the largest version published
//	{prefix}:{exp}:params                  pub/sub channel: "line version" at each new version
//	{prefix}:{exp}:track:{id}:{token}      string: the attempt's results.Episode as JSON
//	{prefix}:{exp}:checkpoint:{task}       hash: "@" (marker) and "f:{name}" per file
//	{prefix}:{exp}:curve:{task}            list: the task's live.CurvePoints as JSON, oldest
//	                                       first, at most live.MaxCurvePoints (TTL CurveTTL)
//	{prefix}:{exp}:curves                  hash: task -> line of the curves (TTL CurveTTL)
//	{prefix}::tile:{arena}                 hash: tile (the live.Tile as JSON), jpeg (if any);
//	                                       expires with the tile's TTL
//	{prefix}::tiles                        sorted set: arena ids scored by their tile's expiry
//	                                       (Unix ms, the server's clock); expires with its last
//	                                       tile
//
// Tiles belong to no experiment: their keys have the empty experiment, which no experiment has.
//
// An append (seen set + XADD), a publish (compare, store, raise latest, PUBLISH) and a
// checkpoint save (DEL + HSET) each run as one Lua script, so a retry after a lost reply
// changes nothing and a reader never sees half of a write; so do a tile's put (replace the
// hash, set its TTL, index it) and a curve's append (keep the points above the last, trim).
//
// # Durability
//
// A write is acknowledged only once Redis has it in its append-only file, so a Redis restart
// (or crash) loses nothing acknowledged. Open checks it: the server must run with appendonly
// yes and appendfsync always (Redis fsyncs the file before it answers, grouping the writes of
// concurrent clients into one fsync), or answer WAITAOF (Redis >= 7.2, appendonly yes), in
// which case each write is followed by WAITAOF 1 0 on its connection. appendfsync always is
// chosen where it is set: it costs one fsync per event-loop turn whatever the number of
// writers, and it is the only choice on Redis 7.0. See Durability. The check is made at Open;
// a server whose configuration is changed afterwards is not checked again. Tiles and curves are
// not worth an fsync of their own: their writes are never followed by WAITAOF (with appendfsync
// always the server still fsyncs them before it answers).
//
// Redis AUTH is required (a password, and an ACL user name in the URL if any); a password in
// the URL is refused, and no error or log line holds the password. rediss:// URLs connect with
// TLS (Config.CAFile adds a certificate authority).
package redisstore
