//! The RTMP protocol, sans I/O: handshake, chunk stream, AMF, messages and
//! the per-connection protocol session. Nothing here touches a socket, so
//! every byte path is unit-testable and fuzzable.

pub mod amf;
pub mod chunk;
pub mod handshake;
pub mod message;
pub mod session;
pub mod state;
pub mod url;

pub use amf::Amf;
pub use message::{Command, Message, UserControl};
pub use session::Session;
pub use url::RtmpUrl;
