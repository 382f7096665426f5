//! Publisher timestamps made safe for players.
//!
//! RTMP timestamps are 32-bit milliseconds that wrap after ~49.7 days, and
//! encoders do send them backwards (restarts, audio/video skew, bugs). We
//! unwrap them into 64 bits using the signed distance from the previous one,
//! keep each track monotonic, and hand players the low 32 bits, which wrap
//! exactly the way RTMP expects.

#[derive(Debug, Default, Clone)]
pub struct TimestampFix {
    last_raw: Option<u32>,
    last_ext: i64,
    /// Last output per track (audio, video, data).
    track: [i64; 3],
}

impl TimestampFix {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the player timestamp for a raw publisher timestamp on `track`.
    pub fn fix(&mut self, raw: u32, track: usize) -> u32 {
        let ext = match self.last_raw {
            None => raw as i64,
            Some(prev) => self.last_ext + raw.wrapping_sub(prev) as i32 as i64,
        };
        self.last_raw = Some(raw);
        self.last_ext = ext;
        let out = ext.max(self.track[track]).max(0);
        self.track[track] = out;
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
}
