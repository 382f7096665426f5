//! What one player is sent, decided without I/O: `wait_key`/`wait_video`,
//! `receiveAudio`/`receiveVideo`, pause, and the slow-player policy.
//!
//! Slow players: the fan-out ring tells a player how many frames it missed
//! when it falls behind. The player then skips to the next video keyframe
//! (so its decoder restarts cleanly rather than showing corruption). If it
//! falls behind again within [`LAG_GRACE`], it cannot keep up with the
//! stream's bitrate at all, and its connection is closed.

use std::time::{Duration, Instant};

use super::frame::{Frame, FrameKind};
use crate::flv::TrackSet;

/// A second lag within this time disconnects the player.
pub const LAG_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("slow player: fell {missed} messages behind twice within {LAG_GRACE:?}")]
pub struct TooSlow {
    pub missed: u64,
}

/// Serializable so that a player can move to another process with what
/// it was sent so far (see `server::handover`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlayerFilter {
    wait_key: bool,
    wait_video: bool,
    /// Video tracks that started (at a keyframe, with `wait_key`): each
    /// track of a multitrack stream starts at its own keyframe.
    started: TrackSet,
    skipping: bool,
    seen_video: bool,
    #[serde(skip)]
    last_lag: Option<Instant>,
    pub receive_audio: bool,
    pub receive_video: bool,
    pub paused: bool,
    /// Frames not delivered because of lag or key-waiting after lag.
    pub dropped: u64,
}

impl PlayerFilter {
    pub fn new(wait_key: bool, wait_video: bool) -> Self {
        PlayerFilter {
            wait_key,
            wait_video,
            started: TrackSet::default(),
            skipping: false,
            seen_video: false,
            last_lag: None,
            receive_audio: true,
            receive_video: true,
            paused: false,
            dropped: 0,
        }
    }

    /// A new publisher started: wait for its first keyframe again.
    pub fn restart(&mut self) {
        self.started.clear();
        self.seen_video = false;
    }

    /// After unpause: resume at a keyframe.
    pub fn resume(&mut self) {
        self.paused = false;
        self.started.clear();
    }

    /// Whether frames can pass as they come (see
    /// [`Self::passes_unchanged`]): not paused, skipping or selective.
    pub fn direct_ok(&self) -> bool {
        !self.paused && !self.skipping && self.receive_audio && self.receive_video
    }

    /// Whether `f` goes to this player with no change to this filter:
    /// what a publisher writing for the player (`live::direct`) may decide
    /// alone. A frame that would start a track, end a skip or be held
    /// back answers false, and the player's own task decides it.
    pub fn passes_unchanged(&self, f: &Frame) -> bool {
        if self.paused || self.skipping {
            return false;
        }
        match f.kind {
            FrameKind::Data => true,
            FrameKind::Video => {
                self.receive_video
                    && self.seen_video
                    && (f.info.sequence_header || self.started.contains(f.info.track))
            }
            FrameKind::Audio => {
                self.receive_audio
                    && (f.info.sequence_header
                        || !(self.wait_video && self.seen_video && self.started.is_empty()))
            }
        }
    }

    /// Whether `f` goes to this player.
    pub fn admit(&mut self, f: &Frame) -> bool {
        if self.paused {
            return false;
        }
        match f.kind {
            FrameKind::Data => true,
            FrameKind::Video => {
                self.seen_video = true;
                if !self.receive_video {
                    return false;
                }
                if f.info.sequence_header {
                    return true;
                }
                let track = f.info.track;
                if (self.skipping || (self.wait_key && !self.started.contains(track)))
                    && !f.info.keyframe
                {
                    if self.skipping {
                        self.dropped += 1;
                    }
                    return false;
                }
                self.skipping = false;
                self.started.insert(track);
                true
            }
            FrameKind::Audio => {
                if !self.receive_audio {
                    return false;
                }
                if f.info.sequence_header {
                    return true;
                }
                if self.skipping && self.seen_video {
                    self.dropped += 1;
                    return false;
                }
                self.skipping = false;
                !(self.wait_video && self.seen_video && self.started.is_empty())
            }
        }
    }

    /// The ring reports `missed` frames lost to lag.
    pub fn on_lag(&mut self, missed: u64, now: Instant) -> Result<(), TooSlow> {
        self.dropped += missed;
        if self
            .last_lag
            .is_some_and(|t| now.duration_since(t) < LAG_GRACE)
        {
            return Err(TooSlow { missed });
        }
        self.last_lag = Some(now);
        self.skipping = true;
        // Every track lost frames: each restarts at its own keyframe.
        self.started.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::MediaInfo;
    use bytes::Bytes;

    fn frame(kind: FrameKind, key: bool, seq: bool) -> Frame {
        let info = MediaInfo {
            keyframe: key,
            sequence_header: seq,
            codec_id: 7,
            fourcc: None,
            track: 0,
        };
        Frame::new(kind, 0, info, Bytes::from_static(b"x"), 4096, false)
    }

    /// Every frame kind in every filter state reachable from a few
    /// sequences: where `passes_unchanged` says yes, `admit` admits and
    /// changes nothing.
    #[test]
    fn passes_unchanged_agrees_with_admit() {
        let kinds = [
            (FrameKind::Video, true, true),
            (FrameKind::Video, true, false),
            (FrameKind::Video, false, false),
            (FrameKind::Audio, false, true),
            (FrameKind::Audio, false, false),
            (FrameKind::Data, false, false),
        ];
        let mut checked = 0;
        for (wait_key, wait_video) in [(true, false), (true, true), (false, false), (false, true)] {
            // Drive the filter through every sequence of three frames (and
            // a lag, a pause, audio off), checking each step.
            for a in 0..kinds.len() {
                for b in 0..kinds.len() {
                    for extra in 0..4 {
                        let mut p = PlayerFilter::new(wait_key, wait_video);
                        for (i, &k) in [a, b].iter().enumerate() {
                            if i == 1 {
                                match extra {
                                    1 => {
                                        let _ = p.on_lag(3, Instant::now());
                                    }
                                    2 => p.paused = true,
                                    3 => p.receive_audio = false,
                                    _ => {}
                                }
                            }
                            let (kind, key, seq) = kinds[k];
                            let _ = p.admit(&frame(kind, key, seq));
                            for &(kind, key, seq) in &kinds {
                                let f = frame(kind, key, seq);
                                if p.passes_unchanged(&f) {
                                    let before = format!("{p:?}");
                                    let mut q = p.clone();
                                    assert!(q.admit(&f), "{before} {kind:?} {key} {seq}");
                                    assert_eq!(format!("{q:?}"), before, "{kind:?} {key} {seq}");
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn wait_key_then_flow() {
        let mut p = PlayerFilter::new(true, false);
        assert!(
            p.admit(&frame(FrameKind::Video, true, true)),
            "sequence header always"
        );
        assert!(!p.admit(&frame(FrameKind::Video, false, false)));
        assert!(p.admit(&frame(FrameKind::Audio, true, false)));
        assert!(p.admit(&frame(FrameKind::Video, true, false)));
        assert!(p.admit(&frame(FrameKind::Video, false, false)));
    }

    #[test]
    fn each_video_track_starts_at_its_own_keyframe() {
        let on = |track: u8, key: bool| {
            let mut f = frame(FrameKind::Video, key, false);
            f.info.track = track;
            f
        };
        let mut p = PlayerFilter::new(true, false);
        assert!(p.admit(&on(0, true)));
        assert!(!p.admit(&on(1, false)), "track 1 has not had a keyframe");
        assert!(p.admit(&on(0, false)));
        assert!(p.admit(&on(1, true)));
        assert!(p.admit(&on(1, false)));
        p.on_lag(3, Instant::now()).unwrap();
        assert!(p.admit(&on(1, true)));
        assert!(
            !p.admit(&on(0, false)),
            "after a lag, every track waits again"
        );
        assert!(p.admit(&on(1, false)));
    }

    #[test]
    fn lag_skips_to_keyframe_then_disconnects_on_repeat() {
        let mut p = PlayerFilter::new(true, false);
        let t0 = Instant::now();
        assert!(p.admit(&frame(FrameKind::Video, true, false)));
        p.on_lag(40, t0).unwrap();
        assert!(!p.admit(&frame(FrameKind::Video, false, false)));
        assert!(!p.admit(&frame(FrameKind::Audio, true, false)));
        assert!(p.admit(&frame(FrameKind::Video, true, false)));
        assert!(p.admit(&frame(FrameKind::Audio, true, false)));
        assert_eq!(p.dropped, 42);
        assert!(p.on_lag(5, t0 + Duration::from_secs(3)).is_err());
        let mut q = PlayerFilter::new(true, false);
        q.on_lag(1, t0).unwrap();
        assert!(q.on_lag(1, t0 + LAG_GRACE * 2).is_ok());
    }

    #[test]
    fn audio_only_resumes_at_once_and_wait_video() {
        let mut p = PlayerFilter::new(true, false);
        p.on_lag(3, Instant::now()).unwrap();
        assert!(p.admit(&frame(FrameKind::Audio, true, false)));
        let mut w = PlayerFilter::new(true, true);
        assert!(
            w.admit(&frame(FrameKind::Audio, true, false)),
            "no video seen yet"
        );
        assert!(!w.admit(&frame(FrameKind::Video, false, false)));
        assert!(
            !w.admit(&frame(FrameKind::Audio, true, false)),
            "waiting for video"
        );
        assert!(w.admit(&frame(FrameKind::Video, true, false)));
        assert!(w.admit(&frame(FrameKind::Audio, true, false)));
    }
}
