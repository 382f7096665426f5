//! Publisher timestamps made safe for players.
//!
//! RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days, and
//! encoders do send them backwards (restarts, audio/video skew, bugs). We
//! unwrap them into 64 bits using the signed distance from the previous one,
//! keep each track monotonic, and hand players the low 32 bits, which wrap
//! exactly the way RTMP expects.

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct TimestampFix {
    last_raw: Option<u32>,
    last_ext: i64,
    /// Last output per kind (audio, video, data), for its default track.
    track: [i64; 3],
    /// Last output of the other tracks of an Enhanced RTMP multitrack
    /// publish, by (kind, track id): each track is monotonic on its own, so
    /// a second audio track that trails the first by a few ms is not
    /// pulled forward.
    extra: Vec<(usize, u8, i64)>,
    /// Set by [`Self::continuing`]: the first timestamp maps at or above it.
    floor: Option<i64>,
    offset: i64,
}

impl TimestampFix {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a publisher taking a stream over, given the last (audio, video)
    /// timestamps players got: its timestamps are shifted, if needed, so
    /// that no track ever goes back.
    pub fn continuing(last: [u32; 2]) -> Self {
        let (a, v) = (last[0] as i64, last[1] as i64);
        TimestampFix {
            floor: Some(a.max(v)),
            track: [a, v, 0],
            ..Self::default()
        }
    }

    /// Returns the player timestamp for a raw publisher timestamp of kind
    /// `track` (0 audio, 1 video, 2 data), default track.
    pub fn fix(&mut self, raw: u32, track: usize) -> u32 {
        self.fix_track(raw, track, 0)
    }

    /// The same for track `id` of a multitrack publish.
    pub fn fix_track(&mut self, raw: u32, track: usize, id: u8) -> u32 {
        let ext = match self.last_raw {
            None => raw as i64,
            Some(prev) => self.last_ext + raw.wrapping_sub(prev) as i32 as i64,
        };
        self.last_raw = Some(raw);
        self.last_ext = ext;
        if let Some(floor) = self.floor.take() {
            self.offset = (floor - ext).max(0);
        }
        let last = match id {
            0 => &mut self.track[track],
            _ => match self.extra.iter().position(|e| (e.0, e.1) == (track, id)) {
                Some(i) => &mut self.extra[i].2,
                None => {
                    // At most 2 x 255 entries: kinds and ids are bounded.
                    self.extra.push((track, id, 0));
                    let n = self.extra.len() - 1;
                    &mut self.extra[n].2
                }
            },
        };
        let out = (ext + self.offset).max(*last).max(0);
        *last = out;
        out as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_stays_monotonic() {
        let mut f = TimestampFix::new();
        assert_eq!(f.fix(0xFFFF_FF00, 1), 0xFFFF_FF00);
        // wrap: raw goes to 0x10, player sees the low 32 bits of 2^32 + 0x10
        assert_eq!(f.fix(0x10, 1), 0x10);
        // video going backwards is held at the last value
        assert_eq!(f.fix(0x08, 1), 0x10);
        // audio may trail video slightly on its own track
        assert_eq!(f.fix(0x09, 0), 0x09);
        assert_eq!(f.fix(0x40, 1), 0x40);
    }

    #[test]
    fn each_track_of_a_multitrack_publish_is_monotonic_on_its_own() {
        let mut f = TimestampFix::new();
        assert_eq!(f.fix_track(2030, 0, 0), 2030);
        // A second audio track trailing the first keeps its own time.
        assert_eq!(f.fix_track(2021, 0, 1), 2021);
        assert_eq!(f.fix_track(2015, 0, 1), 2021, "but never goes back");
        assert_eq!(f.fix_track(2045, 0, 1), 2045);
        assert_eq!(f.fix(2025, 0), 2030, "track 0 is held as before");
    }

    #[test]
    fn continuing_after_takeover() {
        // new publisher restarts at 0: shifted to continue at 5000
        let mut f = TimestampFix::continuing([4880, 5000]);
        assert_eq!(f.fix(0, 0), 5000, "audio shifted above the last video too");
        assert_eq!(f.fix(0, 1), 5000);
        assert_eq!(f.fix(40, 1), 5040);
        // a moving publisher whose clock continues is not shifted
        let mut g = TimestampFix::continuing([4990, 5000]);
        assert_eq!(g.fix(5040, 1), 5040);
        // nor held back on a track that trails a little
        assert_eq!(g.fix(5020, 0), 5020);
    }
}
