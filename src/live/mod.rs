//! Live streaming: the stream registry, shared frames and the fan-out from
//! one publisher to many players. See `docs/design.md`.

pub mod describe;
pub mod direct;
pub mod frame;
pub mod player;
pub mod registry;
pub mod stream;
pub mod timestamp;

pub use frame::{Frame, FrameKind};
pub use registry::{Registry, StreamKey};
pub use stream::{Delivery, Snapshot, Stream};
