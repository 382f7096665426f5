//! Video on demand: nginx-rtmp's `play` from FLV and MP4 files.
//!
//! The layers, lowest first:
//! * [`source`]: positioned reads (a file, or bytes in tests and fuzzing);
//! * [`index`]: what a file holds, as one list of samples in play order,
//!   the decoder headers and the metadata; built once per file and shared
//!   by every player of it ([`cache`]);
//! * [`flv_file`] and [`mp4`]: build an index from each format, reading
//!   only headers and tables, bounded, never trusting a claimed length
//!   before checking it against the file;
//! * [`pacer`]: when each sample is due (sans-IO);
//! * [`locate`] and [`fetch`]: from a stream name to a file, local or over
//!   HTTP;
//! * [`player`]: one player's cursor, reading a batch of samples at a time.
//!
//! VOD sits beside `live`: both are sources of frames for a playing
//! connection, so the connection code drives a [`player::Vod`] the way it
//! drives a ring receiver.

pub mod cache;
pub mod fetch;
pub mod flv_file;
pub mod index;
pub mod locate;
pub mod mp4;
pub mod pacer;
pub mod player;
pub mod source;

pub use index::{Index, Sample};

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(String),
}

pub(crate) fn bad<T>(msg: impl Into<String>) -> Result<T, VodError> {
    Err(VodError::Format(msg.into()))
}

/// Samples one file may index, all tracks together: 4 Mi samples (96 MiB
/// of index) is 16 hours of 25 fps video with 48 kHz AAC. A file claiming
/// more is refused before anything is allocated for it.
pub const MAX_SAMPLES: usize = 4 << 20;
