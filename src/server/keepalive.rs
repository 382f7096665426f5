//! Dead-peer detection with nginx-rtmp's `ping`/`ping_timeout`/`timeout`.
//!
//! After `ping` without any bytes from the peer we send a PingRequest; if
//! nothing at all arrives within `ping_timeout` after it, the peer is gone.
//! With `ping 0`, plain inactivity beyond `timeout` closes the connection.

use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    SendPing,
    Dead(&'static str),
}

pub struct Keepalive {
    ping: Duration,
    ping_timeout: Duration,
    timeout: Duration,
    last_recv: Instant,
    ping_sent: Option<Instant>,
}

impl Keepalive {
    pub fn new(ping: Duration, ping_timeout: Duration, timeout: Duration, now: Instant) -> Self {
        Keepalive {
            ping,
            ping_timeout,
            timeout,
            last_recv: now,
            ping_sent: None,
        }
    }

    pub fn received(&mut self, now: Instant) {
        self.last_recv = now;
        self.ping_sent = None;
    }

    /// When [`Self::poll`] may next have something to do: the timer a
    /// connection sleeps until, instead of waking every second.
    pub fn next_due(&self) -> Instant {
        match self.ping_sent {
            _ if self.ping.is_zero() => self.last_recv + self.timeout,
            Some(t) => t + self.ping_timeout,
            None => self.last_recv + self.ping,
        }
    }

    pub fn poll(&mut self, now: Instant) -> Action {
        let idle = now.duration_since(self.last_recv);
        if self.ping.is_zero() {
            return if idle >= self.timeout {
                Action::Dead("timeout")
            } else {
                Action::Nothing
            };
        }
        match self.ping_sent {
            Some(t) if now.duration_since(t) >= self.ping_timeout => Action::Dead("ping timeout"),
            Some(_) => Action::Nothing,
            None if idle >= self.ping => {
                self.ping_sent = Some(now);
                Action::SendPing
            }
            None => Action::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_then_dead() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = Keepalive::new(10 * s, 5 * s, 60 * s, t0);
        assert_eq!(k.poll(t0 + 9 * s), Action::Nothing);
        assert_eq!(k.next_due(), t0 + 10 * s);
        assert_eq!(k.poll(t0 + 10 * s), Action::SendPing);
        assert_eq!(k.next_due(), t0 + 15 * s);
        assert_eq!(k.poll(t0 + 12 * s), Action::Nothing);
        k.received(t0 + 13 * s);
        assert_eq!(k.poll(t0 + 20 * s), Action::Nothing);
        assert_eq!(k.poll(t0 + 23 * s), Action::SendPing);
        assert_eq!(k.poll(t0 + 28 * s), Action::Dead("ping timeout"));
        let mut k = Keepalive::new(Duration::ZERO, 5 * s, 60 * s, t0);
        assert_eq!(k.next_due(), t0 + 60 * s);
        assert_eq!(k.poll(t0 + 59 * s), Action::Nothing);
        assert_eq!(k.poll(t0 + 60 * s), Action::Dead("timeout"));
    }
}
