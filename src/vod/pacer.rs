//! When each sample is due, as nginx-rtmp paces a VOD play: the player is
//! kept ahead of real time by its buffer length (`SetBufferLength`, or
//! `buflen`) plus one second, measured from the first sample sent after a
//! start or a seek.
//!
//! To wake less often than once per frame, a wake sends everything due
//! within [`SLACK_MS`] more, and a batch is cut at [`MAX_BATCH`] samples or
//! [`MAX_BATCH_BYTES`] so that the initial burst goes out in pieces the
//! socket can take.

use super::index::Sample;

/// What nginx-rtmp adds to the client's buffer length.
pub const AHEAD_MS: u64 = 1000;
pub const SLACK_MS: u64 = 100;
pub const MAX_BATCH: usize = 64;
pub const MAX_BATCH_BYTES: u64 = 256 << 10;

#[derive(Debug, Clone)]
pub struct Pacer {
    /// The next sample to send.
    pub pos: usize,
    /// (media ms, clock ms) of the first sample sent since the last start.
    origin: Option<(u64, u64)>,
}

/// What to do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send samples `pos..end`.
    Send(std::ops::Range<usize>),
    /// Nothing due before this many ms from now.
    Wait(u64),
    /// Every sample was sent.
    End,
}

impl Pacer {
    pub fn new(pos: usize) -> Pacer {
        Pacer { pos, origin: None }
    }

    /// Restarts pacing at `pos` (a seek, an unpause).
    pub fn restart(&mut self, pos: usize) {
        self.pos = pos;
        self.origin = None;
    }

    /// What is due at clock `now` (ms) with a client buffer of `buflen` ms.
    pub fn step(&mut self, samples: &[Sample], now: u64, buflen: u64) -> Step {
        let Some(first) = samples.get(self.pos) else {
            return Step::End;
        };
        let (media0, clock0) = *self.origin.get_or_insert((first.ts as u64, now));
        let end = media0 + now.saturating_sub(clock0) + buflen + AHEAD_MS;
        if first.ts as u64 > end {
            return Step::Wait(first.ts as u64 - end);
        }
        let mut bytes = 0u64;
        let mut stop = self.pos;
        for s in &samples[self.pos..] {
            if s.ts as u64 > end + SLACK_MS
                || stop - self.pos >= MAX_BATCH
                || (bytes > 0 && bytes + s.size as u64 > MAX_BATCH_BYTES)
            {
                break;
            }
            bytes += s.size as u64;
            stop += 1;
        }
        Step::Send(self.pos..stop)
    }

    /// Marks `pos..end` sent.
    pub fn sent(&mut self, end: usize) {
        self.pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: u32) -> Sample {
        Sample {
            offset: 0,
            size: 10,
            ts,
            cts: 0,
            track: 0,
            key: true,
        }
    }

    #[test]
    fn keeps_buflen_plus_a_second_ahead() {
        let samples: Vec<Sample> = (0..100).map(|i| at(i * 100)).collect();
        let mut p = Pacer::new(0);
        // At start: everything up to 0 + 500 + 1000 (+ slack 100).
        assert_eq!(p.step(&samples, 5_000, 500), Step::Send(0..17));
        p.sent(17);
        // Sample 17 is at 1700: due when the clock passes 200 ms.
        assert_eq!(p.step(&samples, 5_000, 500), Step::Wait(200));
        assert_eq!(p.step(&samples, 5_200, 500), Step::Send(17..19));
        p.sent(100);
        assert_eq!(p.step(&samples, 99_000, 500), Step::End);
        // A seek restarts the clock from the sample it lands on.
        p.restart(50);
        assert_eq!(p.step(&samples, 100_000, 0), Step::Send(50..62));
    }

    #[test]
    fn batches_are_cut() {
        let samples: Vec<Sample> = (0..1000).map(|_| at(0)).collect();
        let mut p = Pacer::new(0);
        assert_eq!(p.step(&samples, 0, 0), Step::Send(0..MAX_BATCH));
    }
}
