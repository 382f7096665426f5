//! Binary upgrade with live connection handover (SIGUSR2).
//!
//! nginx upgrades its binary by starting the new one beside the old, which
//! then stops accepting and serves its connections until they leave: every
//! RTMP session of the old binary still ends. Sluice moves them instead. The
//! old process starts the binary at its own path with the same arguments,
//! and the two talk over a Unix socket ([`wire`]):
//!
//! 1. the new process says hello; the old one passes its listening sockets
//!    (so not one connection waiting in a backlog is lost, and no address
//!    is ever unbound);
//! 2. the new process loads its configuration, binds what it did not
//!    inherit and says it is ready. The old one stops accepting;
//! 3. publishers (and every other connection that is not playing) stop at
//!    their next command boundary: nothing more is read from their sockets,
//!    so what is in flight stays in the kernel for the new process to read;
//! 4. players then take everything their stream's ring holds, and stop;
//! 5. each published stream goes over with its cached headers and GOP, then
//!    each connection with its socket (SCM_RIGHTS) and protocol state
//!    (`node::handover::ConnState`): chunk sizes, per-chunk-stream headers
//!    and partial messages, unparsed input, unwritten output, ack counters,
//!    the connect object, stream ids, timestamps, the player's filter, and
//!    the notifications owed;
//! 6. the new process rebuilds them and resumes reading and writing, then
//!    answers which it took. The old one lets those go without a done or
//!    disconnect notification, and goes on with any it refused.
//!
//! If the new process fails at any step (exits, times out, refuses), the
//! old one resumes everything and logs why: the connections never left.

pub mod new;
pub mod old;
pub mod wire;

/// The environment variable that tells a process it is the new half of an
/// upgrade, and where the old half listens.
pub const ENV: &str = "SLUICE_UPGRADE_SOCKET";
