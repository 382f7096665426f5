//! `sluice bench`: many players on one stream, counting what each receives.

use std::time::Duration;

use super::play::{play, PlayOptions, PlayStats};

#[derive(Debug)]
pub struct BenchReport {
    pub players: usize,
    pub connected: usize,
    pub per_player: Vec<PlayStats>,
    pub errors: Vec<String>,
}

impl BenchReport {
    pub fn min_video(&self) -> u64 {
        self.per_player
            .iter()
            .map(|s| s.video_frames)
            .min()
            .unwrap_or(0)
    }
    pub fn max_video(&self) -> u64 {
        self.per_player
            .iter()
            .map(|s| s.video_frames)
            .max()
            .unwrap_or(0)
    }
    pub fn total_bytes(&self) -> u64 {
        self.per_player.iter().map(|s| s.bytes).sum()
    }
}

/// Runs `players` players of `url` concurrently for `duration` (or until the
/// publisher leaves, with `until_unpublish`).
pub async fn bench(
    url: &str,
    players: usize,
    duration: Duration,
    until_unpublish: bool,
) -> BenchReport {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..players {
        let url = url.to_owned();
        set.spawn(async move {
            let opts = PlayOptions {
                duration: Some(duration),
                until_unpublish,
                max_video_frames: None,
            };
            play::<tokio::io::Sink>(&url, None, &opts).await
        });
    }
    let mut report = BenchReport {
        players,
        connected: 0,
        per_player: Vec::new(),
        errors: Vec::new(),
    };
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => {
                report.connected += 1;
                report.per_player.push(s);
            }
            Ok(Err(e)) => report.errors.push(e.to_string()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    report
}
