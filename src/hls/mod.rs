//! HLS output: MPEG-TS segments cut at keyframes and a playlist, where
//! nginx-rtmp's `hls_path` puts them.

pub mod segmenter;
pub mod task;
pub mod ts;

use std::any::Any;
use std::sync::Arc;

use crate::node::chain::{Module, Publish};
use crate::node::Shared;

/// The HLS module: a segmenter for every stream published in an
/// application with `hls on`.
#[derive(Default)]
pub struct Hls;

impl Module for Hls {
    fn name(&self) -> &'static str {
        "hls"
    }

    fn publish(&self, _shared: &Arc<Shared>, ev: &Publish) {
        if let Some(h) = &ev.app.hls {
            task::spawn(ev.stream.clone(), h.clone(), ev.key.name.clone());
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
