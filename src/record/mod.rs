//! Recording streams to FLV files, with nginx-rtmp's `record` directives.
//!
//! A recorder is one more reader of a stream's fan-out ring, like a player:
//! the publisher never waits for the disk. [`file::Recording`] decides,
//! without I/O, when files open and close and what bytes go in them;
//! [`task`] runs it against the ring and the filesystem. A recorder that
//! falls a whole ring behind (a disk slower than the stream) skips to the
//! next keyframe, and one whose writes fail stops with a log line; neither
//! touches the live stream.

pub mod file;
pub mod module;
pub mod path;
pub mod task;

pub use file::{Op, Recording};
pub use module::Record;
pub use task::{spawn, Controls, Ctl, Events, Hook};
