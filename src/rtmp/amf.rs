//! AMF0 encoding and AMF0/AMF3 decoding.
//!
//! RTMP commands and metadata are AMF0 values; Flash clients that negotiated
//! `objectEncoding 3` switch individual values to AMF3 with the AVM+ marker.
//! We decode both into one [`Amf`] tree and only ever encode AMF0, which every
//! client accepts.
//!
//! The decoder is written for hostile input (librtmp's AMF3 decoder had three
//! CVEs): every length is checked against the bytes that are actually present
//! before anything is allocated, nesting depth is capped, and AMF3 reference
//! tables cannot be used to multiply a small input into a huge tree because
//! every decoded value is charged against a budget proportional to the input.

use bytes::{BufMut, Bytes, BytesMut};

/// Maximum nesting of objects/arrays. Real commands nest two or three levels.
pub const MAX_DEPTH: usize = 32;

/// A decoded AMF value. Object properties keep their wire order because
/// some peers (and nginx-rtmp's notify fields) care about order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf)>),
    StrictArray(Vec<Amf>),
    Date(f64),
    Xml(String),
    TypedObject(String, Vec<(String, Amf)>),
    ByteArray(Bytes),
}

impl Amf {
    pub fn str(s: &str) -> Amf {
        Amf::String(s.to_owned())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf::String(s) | Amf::Xml(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Truthiness the way encoders use it: boolean true or a non-zero number.
    pub fn truthy(&self) -> bool {
        match self {
            Amf::Boolean(b) => *b,
            Amf::Number(n) => *n != 0.0,
            _ => false,
        }
    }

    /// Properties of an object-like value (object, ECMA array, typed object).
    pub fn props(&self) -> Option<&[(String, Amf)]> {
        match self {
            Amf::Object(p) | Amf::EcmaArray(p) | Amf::TypedObject(_, p) => Some(p),
            _ => None,
        }
    }

    /// Looks a property up by name in an object-like value.
    pub fn get(&self, key: &str) -> Option<&Amf> {
        self.props()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Rough number of bytes this value occupies in memory, used to charge
    /// AMF3 reference copies against the decode budget.
    fn cost(&self) -> usize {
        16 + match self {
            Amf::String(s) | Amf::Xml(s) => s.len(),
            Amf::Object(p) | Amf::EcmaArray(p) | Amf::TypedObject(_, p) => {
                p.iter().map(|(k, v)| k.len() + v.cost()).sum()
            }
            Amf::StrictArray(v) => v.iter().map(Amf::cost).sum(),
            Amf::ByteArray(b) => b.len(),
            _ => 0,
        }
    }
}

/// Builds an `Amf::Object` from `(key, value)` pairs.
pub fn object<const N: usize>(pairs: [(&str, Amf); N]) -> Amf {
    Amf::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmfError {
    #[error("AMF value truncated")]
    Truncated,
    #[error("AMF nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("unsupported AMF0 marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    #[error("unsupported AMF3 marker 0x{0:02x}")]
    UnsupportedAmf3Marker(u8),
    #[error("bad AMF reference {0}")]
    BadReference(u32),
    #[error("AMF string is not UTF-8")]
    BadUtf8,
    #[error("AMF value expands beyond its decode budget")]
    Budget,
}

// ---------------------------------------------------------------- encoding

/// Appends the AMF0 encoding of `v` to `out`.
pub fn encode(v: &Amf, out: &mut BytesMut) {
    match v {
        Amf::Number(n) => {
            out.put_u8(0x00);
            out.put_f64(*n);
        }
        Amf::Boolean(b) => {
            out.put_u8(0x01);
            out.put_u8(*b as u8);
        }
        Amf::String(s) => encode_string(s, out),
        Amf::Object(p) => {
            out.put_u8(0x03);
            encode_props(p, out);
        }
        Amf::Null => out.put_u8(0x05),
        Amf::Undefined => out.put_u8(0x06),
        Amf::EcmaArray(p) => {
            out.put_u8(0x08);
            out.put_u32(p.len() as u32);
            encode_props(p, out);
        }
        Amf::StrictArray(items) => {
            out.put_u8(0x0a);
            out.put_u32(items.len() as u32);
            for i in items {
                encode(i, out);
            }
        }
        Amf::Date(ms) => {
            out.put_u8(0x0b);
            out.put_f64(*ms);
            out.put_i16(0);
        }
        Amf::Xml(s) => {
            out.put_u8(0x0f);
            out.put_u32(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        Amf::TypedObject(class, p) => {
            out.put_u8(0x10);
            put_short_str(class, out);
            encode_props(p, out);
        }
        // AMF0 has no byte array: switch to AMF3 for this one value (AVM+),
        // which is lossless and decodes back to the same bytes. (A long
        // string would not: the bytes need not be UTF-8.)
        Amf::ByteArray(b) => {
            let b = &b[..b.len().min(U29_MAX as usize)];
            out.put_u8(0x11);
            out.put_u8(0x0c);
            put_u29(((b.len() as u32) << 1) | 1, out);
            out.put_slice(b);
        }
    }
}

/// Largest length an AMF3 U29 length field (shifted by one flag bit) holds.
const U29_MAX: u32 = (1 << 28) - 1;

/// Writes AMF3's variable-length 29-bit integer.
fn put_u29(v: u32, out: &mut BytesMut) {
    let v = v & 0x1FFF_FFFF;
    if v < 0x80 {
        out.put_u8(v as u8);
    } else if v < 0x4000 {
        out.put_slice(&[(v >> 7) as u8 | 0x80, (v & 0x7F) as u8]);
    } else if v < 0x20_0000 {
        out.put_slice(&[
            (v >> 14) as u8 | 0x80,
            ((v >> 7) & 0x7F) as u8 | 0x80,
            (v & 0x7F) as u8,
        ]);
    } else {
        out.put_slice(&[
            (v >> 22) as u8 | 0x80,
            ((v >> 15) & 0x7F) as u8 | 0x80,
            ((v >> 8) & 0x7F) as u8 | 0x80,
            v as u8,
        ]);
    }
}

fn encode_string(s: &str, out: &mut BytesMut) {
    if s.len() <= u16::MAX as usize {
        out.put_u8(0x02);
        put_short_str(s, out);
    } else {
        out.put_u8(0x0c);
        out.put_u32(s.len() as u32);
        out.put_slice(s.as_bytes());
    }
}

fn put_short_str(s: &str, out: &mut BytesMut) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn encode_props(p: &[(String, Amf)], out: &mut BytesMut) {
    for (k, v) in p {
        put_short_str(k, out);
        encode(v, out);
    }
    out.put_slice(&[0, 0, 0x09]);
}

/// Encodes a sequence of values (a command or data message body).
pub fn encode_all(values: &[Amf]) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    for v in values {
        encode(v, &mut out);
    }
    out.freeze()
}

// ---------------------------------------------------------------- decoding

/// Decodes every AMF0 value in `buf` (AVM+ markers switch single values to
/// AMF3). Trailing garbage after at least one value is an error too: a
/// command body is exactly a sequence of values.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf>, AmfError> {
    let mut d = Decoder::new(buf);
    let mut out = Vec::new();
    while !d.is_empty() {
        out.push(d.amf0()?);
    }
    Ok(out)
}

/// A bounded, allocation-safe AMF reader over a byte slice.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
    budget: usize,
    amf3_strings: Vec<String>,
    amf3_objects: Vec<Amf>,
    amf3_traits: Vec<Traits>,
}

#[derive(Clone)]
struct Traits {
    class: String,
    dynamic: bool,
    sealed: Vec<String>,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder {
            buf,
            pos: 0,
            depth: 0,
            // Decoded trees may legitimately be larger than the input
            // (16 bytes of bookkeeping per 1-byte null), but not by more.
            budget: buf.len().saturating_mul(32).saturating_add(4096),
            amf3_strings: Vec::new(),
            amf3_objects: Vec::new(),
            amf3_traits: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        if self.buf.len() - self.pos < n {
            return Err(AmfError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, AmfError> {
        let b = self.take(8)?;
        Ok(f64::from_be_bytes(
            b.try_into().map_err(|_| AmfError::Truncated)?,
        ))
    }

    fn charge(&mut self, cost: usize) -> Result<(), AmfError> {
        self.budget = self.budget.checked_sub(cost).ok_or(AmfError::Budget)?;
        Ok(())
    }

    fn utf8(&mut self, len: usize) -> Result<String, AmfError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| AmfError::BadUtf8)
    }

    fn enter(&mut self) -> Result<(), AmfError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        Ok(())
    }

    /// Reads one AMF0 value.
    pub fn amf0(&mut self) -> Result<Amf, AmfError> {
        self.charge(16)?;
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Amf::Number(self.f64()?),
            0x01 => Amf::Boolean(self.u8()? != 0),
            0x02 => {
                let n = self.u16()? as usize;
                Amf::String(self.utf8(n)?)
            }
            0x03 => Amf::Object(self.amf0_props()?),
            0x05 => Amf::Null,
            0x06 => Amf::Undefined,
            0x08 => {
                // The count is advisory (encoders get it wrong); the
                // object-end marker is authoritative. Never preallocate it.
                let _count = self.u32()?;
                Amf::EcmaArray(self.amf0_props()?)
            }
            0x0a => {
                let count = self.u32()? as usize;
                // Each element needs at least one byte: refuse counts the
                // remaining input cannot possibly hold before looping.
                if count > self.buf.len() - self.pos {
                    return Err(AmfError::Truncated);
                }
                self.enter()?;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.amf0()?);
                }
                self.depth -= 1;
                Amf::StrictArray(items)
            }
            0x0b => {
                let ms = self.f64()?;
                let _tz = self.u16()?;
                Amf::Date(ms)
            }
            0x0c => {
                let n = self.u32()? as usize;
                Amf::String(self.utf8(n)?)
            }
            0x0d => Amf::Undefined, // "unsupported" marker carries no data
            0x0f => {
                let n = self.u32()? as usize;
                Amf::Xml(self.utf8(n)?)
            }
            0x10 => {
                let n = self.u16()? as usize;
                let class = self.utf8(n)?;
                Amf::TypedObject(class, self.amf0_props()?)
            }
            0x11 => self.amf3()?,
            // 0x04 movieclip, 0x07 reference, 0x09 stray object-end, 0x0e recordset
            m => return Err(AmfError::UnsupportedMarker(m)),
        })
    }

    fn amf0_props(&mut self) -> Result<Vec<(String, Amf)>, AmfError> {
        self.enter()?;
        let mut props = Vec::new();
        loop {
            let n = self.u16()? as usize;
            if n == 0 {
                // An empty key followed by the object-end marker closes the
                // object. Some encoders omit the marker at the end of input.
                if self.is_empty() {
                    break;
                }
                if self.buf[self.pos] == 0x09 {
                    self.pos += 1;
                    break;
                }
            }
            let key = self.utf8(n)?;
            let v = self.amf0()?;
            props.push((key, v));
        }
        self.depth -= 1;
        Ok(props)
    }

    // ------------------------------------------------------------ AMF3

    fn u29(&mut self) -> Result<u32, AmfError> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.u8()? as u32;
            if i == 3 {
                return Ok((v << 8) | b);
            }
            v = (v << 7) | (b & 0x7f);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok(v)
    }

    fn amf3_string(&mut self) -> Result<String, AmfError> {
        let h = self.u29()?;
        if h & 1 == 0 {
            let idx = h >> 1;
            let s = self
                .amf3_strings
                .get(idx as usize)
                .cloned()
                .ok_or(AmfError::BadReference(idx))?;
            self.charge(s.len())?;
            return Ok(s);
        }
        let s = self.utf8((h >> 1) as usize)?;
        if !s.is_empty() {
            self.amf3_strings.push(s.clone());
        }
        Ok(s)
    }

    fn amf3_obj_ref(&mut self, idx: u32) -> Result<Amf, AmfError> {
        let v = self
            .amf3_objects
            .get(idx as usize)
            .cloned()
            .ok_or(AmfError::BadReference(idx))?;
        self.charge(v.cost())?;
        Ok(v)
    }

    /// Reads one AMF3 value (after an AVM+ marker).
    pub fn amf3(&mut self) -> Result<Amf, AmfError> {
        self.charge(16)?;
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Amf::Undefined,
            0x01 => Amf::Null,
            0x02 => Amf::Boolean(false),
            0x03 => Amf::Boolean(true),
            0x04 => {
                let v = self.u29()?;
                // sign-extend the 29-bit integer
                Amf::Number((((v << 3) as i32) >> 3) as f64)
            }
            0x05 => Amf::Number(self.f64()?),
            0x06 => Amf::String(self.amf3_string()?),
            0x07 | 0x0b => {
                let h = self.u29()?;
                if h & 1 == 0 {
                    return self.amf3_obj_ref(h >> 1);
                }
                let v = Amf::Xml(self.utf8((h >> 1) as usize)?);
                self.amf3_objects.push(v.clone());
                v
            }
            0x08 => {
                let h = self.u29()?;
                if h & 1 == 0 {
                    return self.amf3_obj_ref(h >> 1);
                }
                let v = Amf::Date(self.f64()?);
                self.amf3_objects.push(v.clone());
                v
            }
            0x09 => {
                let h = self.u29()?;
                if h & 1 == 0 {
                    return self.amf3_obj_ref(h >> 1);
                }
                let dense = (h >> 1) as usize;
                if dense > self.buf.len() - self.pos {
                    return Err(AmfError::Truncated);
                }
                self.enter()?;
                let mut assoc = Vec::new();
                loop {
                    let k = self.amf3_string()?;
                    if k.is_empty() {
                        break;
                    }
                    let v = self.amf3()?;
                    assoc.push((k, v));
                }
                let mut items = Vec::new();
                for _ in 0..dense {
                    items.push(self.amf3()?);
                }
                self.depth -= 1;
                let v = if assoc.is_empty() {
                    Amf::StrictArray(items)
                } else {
                    for (i, item) in items.into_iter().enumerate() {
                        assoc.push((i.to_string(), item));
                    }
                    Amf::EcmaArray(assoc)
                };
                self.amf3_objects.push(v.clone());
                v
            }
            0x0a => {
                let h = self.u29()?;
                if h & 1 == 0 {
                    return self.amf3_obj_ref(h >> 1);
                }
                let traits = if h & 2 == 0 {
                    let idx = h >> 2;
                    self.amf3_traits
                        .get(idx as usize)
                        .cloned()
                        .ok_or(AmfError::BadReference(idx))?
                } else {
                    if h & 4 != 0 {
                        // externalizable: the class defines its own format
                        return Err(AmfError::UnsupportedAmf3Marker(marker));
                    }
                    let sealed_count = (h >> 4) as usize;
                    if sealed_count > self.buf.len() - self.pos {
                        return Err(AmfError::Truncated);
                    }
                    let class = self.amf3_string()?;
                    let mut sealed = Vec::new();
                    for _ in 0..sealed_count {
                        sealed.push(self.amf3_string()?);
                    }
                    let t = Traits {
                        class,
                        dynamic: h & 8 != 0,
                        sealed,
                    };
                    self.amf3_traits.push(t.clone());
                    t
                };
                self.enter()?;
                let mut props = Vec::new();
                for name in &traits.sealed {
                    let v = self.amf3()?;
                    props.push((name.clone(), v));
                }
                if traits.dynamic {
                    loop {
                        let k = self.amf3_string()?;
                        if k.is_empty() {
                            break;
                        }
                        let v = self.amf3()?;
                        props.push((k, v));
                    }
                }
                self.depth -= 1;
                let v = if traits.class.is_empty() {
                    Amf::Object(props)
                } else {
                    Amf::TypedObject(traits.class, props)
                };
                self.amf3_objects.push(v.clone());
                v
            }
            0x0c => {
                let h = self.u29()?;
                if h & 1 == 0 {
                    return self.amf3_obj_ref(h >> 1);
                }
                let b = self.take((h >> 1) as usize)?;
                let v = Amf::ByteArray(Bytes::copy_from_slice(b));
                self.amf3_objects.push(v.clone());
                v
            }
            m => return Err(AmfError::UnsupportedAmf3Marker(m)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_amf0_connect_fragment() {
        // "connect", 1.0, {app: "live"} as ffmpeg writes it
        let wire: &[u8] = &[
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', //
            0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, //
            0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', 0x00,
            0x00, 0x09,
        ];
        let v = decode_all(wire).unwrap();
        assert_eq!(v[0], Amf::str("connect"));
        assert_eq!(v[1], Amf::Number(1.0));
        assert_eq!(v[2].get("app"), Some(&Amf::str("live")));
        assert_eq!(&encode_all(&v)[..], wire);
    }

    #[test]
    fn roundtrip_all_types() {
        let v = vec![
            Amf::Number(-3.5),
            Amf::Boolean(true),
            Amf::str("héllo"),
            object([("a", Amf::Null), ("b", Amf::Undefined)]),
            Amf::EcmaArray(vec![("w".into(), Amf::Number(640.0))]),
            Amf::StrictArray(vec![Amf::str("avc1"), Amf::str("hvc1")]),
            Amf::Date(1.0e12),
            Amf::Xml("<a/>".into()),
            Amf::TypedObject("C".into(), vec![("x".into(), Amf::Boolean(false))]),
            Amf::String("x".repeat(70000)),
        ];
        assert_eq!(decode_all(&encode_all(&v)).unwrap(), v);
    }

    #[test]
    fn truncated_everywhere_is_an_error_never_a_panic() {
        let v = vec![
            Amf::str("connect"),
            Amf::Number(1.0),
            object([("tcUrl", Amf::str("rtmp://x/live")), ("n", Amf::Null)]),
            Amf::StrictArray(vec![Amf::Number(1.0)]),
        ];
        let wire = encode_all(&v);
        for cut in 0..wire.len() {
            let r = decode_all(&wire[..cut]);
            if let Ok(vals) = r {
                assert!(vals.len() < v.len() || cut == wire.len());
            }
        }
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // long string claiming 4 GiB
        assert_eq!(
            decode_all(&[0x0c, 0xff, 0xff, 0xff, 0xff, b'a']),
            Err(AmfError::Truncated)
        );
        // strict array of 2^32-1 elements
        assert_eq!(
            decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x05]),
            Err(AmfError::Truncated)
        );
        // nesting bomb
        let mut bomb = Vec::new();
        for _ in 0..1000 {
            bomb.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
        }
        bomb.push(0x05);
        assert_eq!(decode_all(&bomb), Err(AmfError::TooDeep));
        // reference marker and movieclip are unsupported
        assert_eq!(
            decode_all(&[0x07, 0, 1]),
            Err(AmfError::UnsupportedMarker(7))
        );
        assert_eq!(decode_all(&[0x04]), Err(AmfError::UnsupportedMarker(4)));
    }

    #[test]
    fn amf3_values_behind_avmplus() {
        // AVM+ integer -1 (0xff 0xff 0xff 0xff), AVM+ string "ab", AVM+ true
        let wire = [
            0x11, 0x04, 0xff, 0xff, 0xff, 0xff, 0x11, 0x06, 0x05, b'a', b'b', 0x11, 0x03,
        ];
        let v = decode_all(&wire).unwrap();
        assert_eq!(
            v,
            vec![Amf::Number(-1.0), Amf::str("ab"), Amf::Boolean(true)]
        );
        // anonymous dynamic object {k: 5} then a reference to it
        let obj = [
            0x11, 0x0a, 0x0b, 0x01, 0x03, b'k', 0x04, 0x05, 0x01, //
        ];
        let v = decode_all(&obj).unwrap();
        assert_eq!(v[0].get("k"), Some(&Amf::Number(5.0)));
        let mut d = Decoder::new(&[0x0a, 0x0b, 0x01, 0x03, b'k', 0x04, 0x05, 0x01, 0x0a, 0x00]);
        let a = d.amf3().unwrap();
        let b = d.amf3().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn amf3_reference_bomb_hits_budget() {
        // a 1000-byte string, then thousands of references to it
        let mut wire = vec![0x11, 0x0a, 0x0b, 0x01];
        // (1000 << 1) | 1 = 2001 as U29 = 0x8f 0x51
        wire.extend_from_slice(&[0x03, b'k', 0x06, 0x8f, 0x51]);
        wire.extend(std::iter::repeat_n(b'x', 1000));
        for i in 0..20000u32 {
            let key = format!("{i}");
            wire.push(((key.len() << 1) | 1) as u8);
            wire.extend_from_slice(key.as_bytes());
            wire.extend_from_slice(&[0x06, 0x02]); // string ref #1, the long one
        }
        wire.push(0x01);
        assert_eq!(decode_all(&wire), Err(AmfError::Budget));
    }

    #[test]
    fn amf3_unsupported_markers() {
        assert_eq!(
            decode_all(&[0x11, 0x0d, 0x01]),
            Err(AmfError::UnsupportedAmf3Marker(0x0d))
        );
        assert_eq!(
            decode_all(&[0x11, 0x06, 0x02]),
            Err(AmfError::BadReference(1))
        );
    }
}

#[cfg(test)]
mod roundtrip_tests {
    use super::*;

    /// Found by the amf0 fuzz target: a byte array (from AMF3) re-encoded
    /// as an AMF0 long string did not decode when its bytes were not UTF-8.
    #[test]
    fn byte_array_survives_reencoding() {
        for len in [0usize, 1, 0x3F, 0x40, 0x1FFF, 0x2000, 0xFFFFF, 0x100000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 0x80) as u8).collect();
            let v = Amf::ByteArray(Bytes::from(bytes));
            let enc = encode_all(std::slice::from_ref(&v));
            assert_eq!(decode_all(&enc).unwrap(), vec![v], "len {len}");
        }
    }

    #[test]
    fn u29_boundaries() {
        for v in [
            0u32,
            0x7F,
            0x80,
            0x3FFF,
            0x4000,
            0x1F_FFFF,
            0x20_0000,
            0x1FFF_FFFF,
        ] {
            let mut out = BytesMut::new();
            put_u29(v, &mut out);
            assert_eq!(Decoder::new(&out).u29().unwrap(), v, "{v:#x}");
        }
    }
}
