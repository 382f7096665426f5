//! HLS output: MPEG-TS segments cut at keyframes and a playlist, where
//! nginx-rtmp's `hls_path` puts them.

pub mod segmenter;
pub mod task;
pub mod ts;
