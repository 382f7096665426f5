//! The decoder configurations a stream has announced, one per track.
//!
//! A late joiner, a new recording file or a relay that reconnects must
//! get every configuration before any media, or it cannot decode. With one
//! audio and one video track there were two; Enhanced RTMP multitrack
//! makes it one per track and kind (a second audio track, each rendition
//! of an OBS Enhanced Broadcasting ladder), and audio may add a channel
//! layout beside its codec configuration. [`Configs`] keeps the newest of
//! each, in the order they came, keyed by [`ConfigKey`].

use super::body::{self, Media, Packet};

/// A set of track ids (0 to 255).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TrackSet([u64; 4]);

impl TrackSet {
    pub fn insert(&mut self, id: u8) {
        self.0[(id >> 6) as usize] |= 1 << (id & 63);
    }

    pub fn remove(&mut self, id: u8) {
        self.0[(id >> 6) as usize] &= !(1 << (id & 63));
    }

    pub fn contains(&self, id: u8) -> bool {
        self.0[(id >> 6) as usize] & (1 << (id & 63)) != 0
    }

    pub fn is_subset(&self, of: &TrackSet) -> bool {
        self.0.iter().zip(of.0.iter()).all(|(a, b)| a & !b == 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    pub fn clear(&mut self) {
        self.0 = [0; 4];
    }

    /// The ids, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=255u8).filter(|&i| self.contains(i))
    }
}

/// What one configuration message configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigKey {
    pub media: Media,
    pub packet: Packet,
    pub tracks: TrackSet,
}

impl ConfigKey {
    /// Whether a message with this key makes `other`'s obsolete: same
    /// kind of configuration, for tracks all covered by this one.
    fn supersedes(&self, other: &ConfigKey) -> bool {
        self.media == other.media
            && self.packet == other.packet
            && other.tracks.is_subset(&self.tracks)
    }
}

/// The key of a configuration message (`None` for anything else).
pub fn config_key(media: Media, payload: &[u8]) -> Option<ConfigKey> {
    let m = body::parse(media, payload).ok()?;
    if !m.packet().is_config() {
        return None;
    }
    let mut tracks = TrackSet::default();
    for u in m.units() {
        tracks.insert(u.ok()?.track);
    }
    Some(ConfigKey {
        media,
        packet: m.packet(),
        tracks,
    })
}

/// At most this many configurations per stream: 16 tracks of each kind,
/// several times what an encoder sends. The oldest go first.
const MAX_ENTRIES: usize = 32;
/// And at most this many bytes of them (each one is at most `max_message`).
const MAX_BYTES: usize = 16 << 20;

/// The newest configuration of each track, in arrival order.
#[derive(Debug, Clone)]
pub struct Configs<T> {
    items: Vec<(ConfigKey, usize, T)>,
}

impl<T> Default for Configs<T> {
    fn default() -> Self {
        Configs { items: Vec::new() }
    }
}

impl<T> Configs<T> {
    /// Keeps `value` (`len` bytes) as the configuration of `key`, dropping
    /// those it supersedes.
    pub fn insert(&mut self, key: ConfigKey, len: usize, value: T) {
        self.items.retain(|(k, _, _)| !key.supersedes(k));
        self.items.push((key, len, value));
        let mut total: usize = self.items.iter().map(|(_, l, _)| l).sum();
        while self.items.len() > MAX_ENTRIES || (total > MAX_BYTES && self.items.len() > 1) {
            total -= self.items.remove(0).1;
        }
    }

    /// The configuration kept for exactly `key`.
    pub fn get(&self, key: &ConfigKey) -> Option<&T> {
        self.items
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, _, v)| v)
    }

    /// Keys and values, in arrival order.
    pub fn entries(&self) -> impl Iterator<Item = (&ConfigKey, &T)> {
        self.items.iter().map(|(k, _, v)| (k, v))
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVC0: &[u8] = &[0x17, 0, 0, 0, 0, 1, 100];
    const AVC1: &[u8] = &[0x96, 0x00, b'a', b'v', b'c', b'1', 1, 1, 77];
    const AAC0: &[u8] = &[0xaf, 0, 0x12, 0x10];
    const AAC1: &[u8] = &[0x95, 0x00, b'm', b'p', b'4', b'a', 1, 0x12, 0x08];
    const CHAN1: &[u8] = &[0x95, 0x04, b'm', b'p', b'4', b'a', 1, 1, 1, 0];

    fn put(c: &mut Configs<&'static [u8]>, media: Media, p: &'static [u8]) {
        c.insert(config_key(media, p).unwrap(), p.len(), p);
    }

    #[test]
    fn one_per_track_and_kind_newest_wins() {
        let mut c = Configs::default();
        put(&mut c, Media::Video, AVC0);
        put(&mut c, Media::Video, AVC1);
        put(&mut c, Media::Audio, AAC0);
        put(&mut c, Media::Audio, AAC1);
        put(&mut c, Media::Audio, CHAN1);
        assert_eq!(
            c.iter().count(),
            5,
            "the channel layout does not replace the codec's"
        );
        put(&mut c, Media::Video, AVC0);
        let order: Vec<_> = c.iter().copied().collect();
        assert_eq!(order, vec![AVC1, AAC0, AAC1, CHAN1, AVC0]);
        assert!(config_key(Media::Video, &[0x27, 1, 0, 0, 0]).is_none());
    }

    #[test]
    fn a_many_track_config_supersedes_its_tracks() {
        let mut c = Configs::default();
        put(&mut c, Media::Video, AVC0);
        put(&mut c, Media::Video, AVC1);
        static BOTH: &[u8] = &[
            0x96, 0x10, b'a', b'v', b'c', b'1', 0, 0, 0, 1, 1, 1, 0, 0, 1, 1,
        ];
        put(&mut c, Media::Video, BOTH);
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), vec![BOTH]);
    }

    #[test]
    fn bounded() {
        let mut c = Configs::default();
        for id in 0..=255u8 {
            let mut t = TrackSet::default();
            t.insert(id);
            let key = ConfigKey {
                media: Media::Video,
                packet: Packet::Config,
                tracks: t,
            };
            c.insert(key, 1 << 20, id);
        }
        assert!(c.iter().count() <= 16);
        assert_eq!(c.iter().last(), Some(&255));
    }
}
