//! The PROXY protocol (HAProxy's, versions 1 and 2), sans I/O: the header
//! a load balancer puts in front of a connection to name the real client.
//! `listen ... proxy_protocol` requires it, as nginx does; the address it
//! names is the one notifications, access rules, logs and /stat see.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature.
const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included.
const V1_MAX: usize = 107;
/// Longest v2 header Sluice reads (addresses plus TLVs some balancers add).
pub const V2_MAX: usize = 16 + 2048;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("bad PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("bad PROXY v2 header: {0}")]
    V2(&'static str),
}

/// What a complete header says.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// The client, or `None` (`UNKNOWN`, `LOCAL`, or a non-IP family): the
    /// connection's own peer stands.
    pub source: Option<SocketAddr>,
    /// Bytes the header took.
    pub len: usize,
}

/// Reads a header from the start of `buf`: `Ok(None)` until it is whole.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let n = buf.len().min(SIG.len());
    if buf[..n] == SIG[..n] {
        return if n < SIG.len() { Ok(None) } else { v2(buf) };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if n < 6 { Ok(None) } else { v1(buf) };
    }
    Err(ProxyError::Missing)
}

/// How many more bytes the header surely has, given its first `buf.len()`
/// (at least 1 while [`parse`] says `Ok(None)`). Reading exactly this much
/// never reads past the header, so what follows (a TLS ClientHello) stays
/// in the socket for whoever comes next.
pub fn wanted(buf: &[u8]) -> usize {
    const PROBE: usize = 8;
    if buf.len() < PROBE {
        return PROBE - buf.len();
    }
    if buf.starts_with(b"PROXY") {
        // v1 ends at a CRLF: no way to know sooner.
        return 1;
    }
    if buf.len() < 16 {
        return 16 - buf.len();
    }
    let total = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    total.min(V2_MAX).saturating_sub(buf.len()).max(1)
}

fn v1(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    let Some(end) = buf.windows(2).take(V1_MAX - 1).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1("no CRLF within 107 bytes"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| ProxyError::V1("not text"))?;
    let len = end + 2;
    let mut f = line.split(' ');
    let source = match f.next() {
        Some("UNKNOWN") => None,
        Some(fam @ ("TCP4" | "TCP6")) => {
            let src: IpAddr = f
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(ProxyError::V1("bad source address"))?;
            let _dst: IpAddr = f
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(ProxyError::V1("bad destination address"))?;
            let port: u16 = f
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(ProxyError::V1("bad source port"))?;
            let _dport: u16 = f
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or(ProxyError::V1("bad destination port"))?;
            if f.next().is_some() || (fam == "TCP4") != src.is_ipv4() {
                return Err(ProxyError::V1("bad address family"));
            }
            Some(SocketAddr::new(src, port))
        }
        _ => return Err(ProxyError::V1("unknown protocol")),
    };
    Ok(Some(Header { source, len }))
}

fn v2(buf: &[u8]) -> Result<Option<Header>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2("version is not 2"));
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Err(ProxyError::V2("header too long"));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let b = &buf[16..len];
    let source = match (ver_cmd & 0x0f, buf[13] >> 4) {
        (0, _) => None, // LOCAL: a health check from the balancer itself
        (1, 1) if b.len() >= 12 => {
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([b[8], b[9]])))
        }
        (1, 2) if b.len() >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            let ip = Ipv6Addr::from(a);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[32], b[33]]),
            ))
        }
        (1, 1 | 2) => return Err(ProxyError::V2("address block too short")),
        (1, _) => None, // AF_UNIX or unspecified
        _ => return Err(ProxyError::V2("unknown command")),
    };
    Ok(Some(Header { source, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading `wanted` bytes at a time ends exactly at the header's end.
    #[test]
    fn wanted_never_reads_past_the_header() {
        let mut v2 = SIG.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]);
        for h in [
            &b"PROXY UNKNOWN\r\n"[..],
            &b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 1935\r\n"[..],
            &v2[..],
        ] {
            let mut wire = h.to_vec();
            wire.extend_from_slice(b"\x16\x03\x01 hello");
            let mut got = 0;
            while parse(&wire[..got]).unwrap().is_none() {
                got += wanted(&wire[..got]);
                assert!(got <= h.len(), "read past the header: {got}");
            }
            assert_eq!(parse(&wire[..got]).unwrap().unwrap().len, h.len());
        }
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 1935\r\n\x03rest";
        for cut in 0..h.len() - 6 {
            assert_eq!(parse(&h[..cut]), Ok(None), "{cut}");
        }
        let got = parse(h).unwrap().unwrap();
        assert_eq!(got.source, Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(&h[got.len..], b"\x03rest");
        let h6 = b"PROXY TCP6 2001:db8::1 ::1 4000 1935\r\n";
        assert_eq!(
            parse(h6).unwrap().unwrap().source,
            Some("[2001:db8::1]:4000".parse().unwrap())
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n").is_err());
        assert!(parse(&[b'P'; 200]).is_err());
        assert_eq!(parse(b"\x03\x00\x00"), Err(ProxyError::Missing));
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend([b'1'; 120]);
        assert!(parse(&long).is_err());
    }

    #[test]
    fn v2_headers() {
        let mut h = SIG.to_vec();
        h.extend([0x21, 0x11, 0, 12]);
        h.extend([198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x07, 0x8f]);
        h.extend(b"\x03");
        for cut in 0..h.len() - 1 {
            assert_eq!(parse(&h[..cut]), Ok(None), "{cut}");
        }
        let got = parse(&h).unwrap().unwrap();
        assert_eq!(got.source, Some("198.51.100.9:8080".parse().unwrap()));
        assert_eq!(got.len, 28);
        // LOCAL: the real peer stands.
        let mut local = SIG.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().source, None);
        // Claimed lengths are bounded before anything is read for them.
        let mut huge = SIG.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(parse(&huge).is_err());
        let mut short = SIG.to_vec();
        short.extend([0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&short).is_err());
    }
}
