//! An MPEG-TS muxer for HLS segments, without I/O: H.264 or HEVC video and
//! AAC audio from FLV payloads in, 188-byte packets out.
//!
//! Each segment starts with PAT and PMT. Video access units get an access
//! unit delimiter, and keyframes the parameter sets from the sequence
//! header (FLV carries them once; a segment must stand alone). Lengths are
//! rewritten from FLV's length-prefixed NAL units to Annex B start codes.
//! AAC frames get an ADTS header built from the AudioSpecificConfig. PCR
//! rides on the video PID (the audio PID when there is no video), at every
//! PES start; continuity counters run per PID across the whole stream.

use bytes::{BufMut, BytesMut};

pub const PACKET: usize = 188;
const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x100;
pub const PID_AUDIO: u16 = 0x101;
const STREAM_H264: u8 = 0x1b;
const STREAM_HEVC: u8 = 0x24;
const STREAM_AAC: u8 = 0x0f;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Hevc,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TsError {
    #[error("{0} sequence header is malformed")]
    BadConfig(&'static str),
    #[error("video frame before its sequence header")]
    NoVideoConfig,
    #[error("audio frame before its sequence header")]
    NoAudioConfig,
    #[error("NAL unit length runs past the frame")]
    BadNal,
    #[error("audio frame of {0} bytes is larger than hls_audio_buffer_size")]
    AudioTooBig(usize),
}

/// AAC parameters for ADTS headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Aac {
    object_type: u8,
    freq_index: u8,
    channels: u8,
}

pub struct Muxer {
    video: Option<VideoCodec>,
    audio: bool,
    /// Annex-B parameter sets (SPS/PPS, or VPS/SPS/PPS), each with a start
    /// code, inserted before every keyframe.
    params: Vec<u8>,
    nal_len: usize,
    aac: Option<Aac>,
    cc: [u8; 4],
}

fn cc_slot(pid: u16) -> usize {
    match pid {
        0 => 0,
        PID_PMT => 1,
        PID_VIDEO => 2,
        _ => 3,
    }
}

impl Muxer {
    /// A muxer for a stream with these tracks (known from the sequence
    /// headers, or from metadata).
    pub fn new(video: Option<VideoCodec>, audio: bool) -> Muxer {
        Muxer {
            video,
            audio,
            params: Vec::new(),
            nal_len: 4,
            aac: None,
            cc: [0; 4],
        }
    }

    fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            PID_VIDEO
        } else {
            PID_AUDIO
        }
    }

    /// PAT and PMT: the start of every segment.
    pub fn tables(&mut self, out: &mut BytesMut) {
        // PAT: program 1 at PID_PMT.
        let mut pat = vec![0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01];
        pat.push(0xe0 | (PID_PMT >> 8) as u8);
        pat.push(PID_PMT as u8);
        self.section(0, &pat, out);
        // PMT.
        let mut streams = Vec::new();
        if let Some(v) = self.video {
            let t = if v == VideoCodec::H264 {
                STREAM_H264
            } else {
                STREAM_HEVC
            };
            streams.extend_from_slice(&[
                t,
                0xe0 | (PID_VIDEO >> 8) as u8,
                PID_VIDEO as u8,
                0xf0,
                0,
            ]);
        }
        if self.audio {
            streams.extend_from_slice(&[
                STREAM_AAC,
                0xe0 | (PID_AUDIO >> 8) as u8,
                PID_AUDIO as u8,
                0xf0,
                0,
            ]);
        }
        let len = 13 + streams.len();
        let pcr = self.pcr_pid();
        let mut pmt = vec![
            0x02,
            0xb0 | ((len >> 8) as u8 & 0x0f),
            len as u8,
            0x00,
            0x01,
            0xc1,
            0x00,
            0x00,
            0xe0 | (pcr >> 8) as u8,
            pcr as u8,
            0xf0,
            0x00,
        ];
        pmt.extend_from_slice(&streams);
        self.section(PID_PMT, &pmt, out);
    }

    /// One PSI section (with pointer field and CRC) in one packet.
    fn section(&mut self, pid: u16, body: &[u8], out: &mut BytesMut) {
        let crc = crc32_mpeg(body);
        let start = out.len();
        out.put_u8(0x47);
        out.put_u8(0x40 | (pid >> 8) as u8);
        out.put_u8(pid as u8);
        out.put_u8(0x10 | self.next_cc(pid));
        out.put_u8(0); // pointer field
        out.put_slice(body);
        out.put_u32(crc);
        out.resize(start + PACKET, 0xff);
    }

    fn next_cc(&mut self, pid: u16) -> u8 {
        let c = &mut self.cc[cc_slot(pid)];
        let v = *c;
        *c = (*c + 1) & 0x0f;
        v
    }

    /// Takes a video sequence header (AVCDecoderConfigurationRecord or
    /// HEVCDecoderConfigurationRecord, without the FLV prefix).
    pub fn video_config(&mut self, codec: VideoCodec, rec: &[u8]) -> Result<(), TsError> {
        self.video = Some(codec);
        self.params.clear();
        match codec {
            VideoCodec::H264 => {
                let bad = TsError::BadConfig("AVC");
                if rec.len() < 7 {
                    return Err(bad);
                }
                self.nal_len = (rec[4] & 3) as usize + 1;
                let mut pos = 5;
                for count_mask in [0x1f_u8, 0xff] {
                    let n = *rec.get(pos).ok_or(bad.clone())? & count_mask;
                    pos += 1;
                    for _ in 0..n {
                        let len = u16::from_be_bytes([
                            *rec.get(pos).ok_or(bad.clone())?,
                            *rec.get(pos + 1).ok_or(bad.clone())?,
                        ]) as usize;
                        let nal = rec.get(pos + 2..pos + 2 + len).ok_or(bad.clone())?;
                        self.params.extend_from_slice(&[0, 0, 0, 1]);
                        self.params.extend_from_slice(nal);
                        pos += 2 + len;
                    }
                }
            }
            VideoCodec::Hevc => {
                let bad = TsError::BadConfig("HEVC");
                if rec.len() < 23 {
                    return Err(bad);
                }
                self.nal_len = (rec[21] & 3) as usize + 1;
                let arrays = rec[22];
                let mut pos = 23;
                for _ in 0..arrays {
                    let b = rec.get(pos..pos + 3).ok_or(bad.clone())?;
                    let n = u16::from_be_bytes([b[1], b[2]]);
                    pos += 3;
                    for _ in 0..n {
                        let l = rec.get(pos..pos + 2).ok_or(bad.clone())?;
                        let len = u16::from_be_bytes([l[0], l[1]]) as usize;
                        let nal = rec.get(pos + 2..pos + 2 + len).ok_or(bad.clone())?;
                        self.params.extend_from_slice(&[0, 0, 0, 1]);
                        self.params.extend_from_slice(nal);
                        pos += 2 + len;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes an AAC AudioSpecificConfig.
    pub fn audio_config(&mut self, asc: &[u8]) -> Result<(), TsError> {
        if asc.len() < 2 {
            return Err(TsError::BadConfig("AAC"));
        }
        self.audio = true;
        self.aac = Some(Aac {
            object_type: asc[0] >> 3,
            freq_index: ((asc[0] & 7) << 1) | (asc[1] >> 7),
            channels: (asc[1] >> 3) & 0x0f,
        });
        Ok(())
    }

    /// Muxes one coded video frame: `data` is the length-prefixed NAL
    /// units, `dts_ms`/`cts_ms` from the FLV tag.
    pub fn video(
        &mut self,
        data: &[u8],
        dts_ms: u64,
        cts_ms: i32,
        keyframe: bool,
        out: &mut BytesMut,
    ) -> Result<(), TsError> {
        let codec = self.video.ok_or(TsError::NoVideoConfig)?;
        if self.params.is_empty() {
            return Err(TsError::NoVideoConfig);
        }
        let mut es = Vec::with_capacity(data.len() + self.params.len() + 16);
        match codec {
            VideoCodec::H264 => es.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]),
            VideoCodec::Hevc => es.extend_from_slice(&[0, 0, 0, 1, 0x46, 0x01, 0x50]),
        }
        if keyframe {
            es.extend_from_slice(&self.params);
        }
        let mut pos = 0;
        while pos < data.len() {
            let l = data.get(pos..pos + self.nal_len).ok_or(TsError::BadNal)?;
            let len = l.iter().fold(0usize, |a, b| (a << 8) | *b as usize);
            pos += self.nal_len;
            let nal = data.get(pos..pos + len).ok_or(TsError::BadNal)?;
            es.extend_from_slice(&[0, 0, 0, 1]);
            es.extend_from_slice(nal);
            pos += len;
        }
        let dts = dts_ms * 90;
        let pts = (dts_ms as i64 + cts_ms as i64).max(0) as u64 * 90;
        self.pes(PID_VIDEO, 0xe0, &es, pts, Some(dts), keyframe, out);
        Ok(())
    }

    /// Muxes one raw AAC frame.
    pub fn audio(&mut self, data: &[u8], pts_ms: u64, out: &mut BytesMut) -> Result<(), TsError> {
        let mut es = Vec::with_capacity(data.len() + 7);
        self.adts(data, &mut es)?;
        self.audio_pes(&es, pts_ms * 90, out);
        Ok(())
    }

    /// The AAC sample rate, once the configuration is known.
    pub fn sample_rate(&self) -> Option<u32> {
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        self.aac
            .and_then(|a| RATES.get(a.freq_index as usize).copied())
    }

    /// One raw AAC frame with its ADTS header, appended to `es`.
    pub fn adts(&self, data: &[u8], es: &mut Vec<u8>) -> Result<(), TsError> {
        let a = self.aac.ok_or(TsError::NoAudioConfig)?;
        let len = data.len() + 7;
        let profile = a.object_type.saturating_sub(1) & 3;
        es.extend_from_slice(&[
            0xff,
            0xf1,
            (profile << 6) | (a.freq_index << 2) | (a.channels >> 2),
            ((a.channels & 3) << 6) | ((len >> 11) as u8 & 3),
            (len >> 3) as u8,
            ((len as u8 & 7) << 5) | 0x1f,
            0xfc,
        ]);
        es.extend_from_slice(data);
        Ok(())
    }

    /// One audio PES packet of ADTS frames at `pts` (90 kHz).
    pub fn audio_pes(&mut self, es: &[u8], pts: u64, out: &mut BytesMut) {
        let random = self.video.is_none();
        self.pes(PID_AUDIO, 0xc0, es, pts, None, random, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn pes(
        &mut self,
        pid: u16,
        stream_id: u8,
        es: &[u8],
        pts: u64,
        dts: Option<u64>,
        random_access: bool,
        out: &mut BytesMut,
    ) {
        let dts = dts.filter(|d| *d != pts);
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(&[0, 0, 1, stream_id]);
        let header_data = if dts.is_some() { 10 } else { 5 };
        let pes_len = 3 + header_data + es.len();
        // Video PES may be unbounded (0); audio must fit.
        let pes_len = if pes_len > 0xffff { 0 } else { pes_len };
        head.extend_from_slice(&(pes_len as u16).to_be_bytes());
        head.push(0x80);
        head.push(if dts.is_some() { 0xc0 } else { 0x80 });
        head.push(header_data as u8);
        put_ts(&mut head, if dts.is_some() { 3 } else { 2 }, pts);
        if let Some(d) = dts {
            put_ts(&mut head, 1, d);
        }
        let with_pcr = pid == self.pcr_pid();
        let pcr = dts.unwrap_or(pts);
        let total = head.len() + es.len();
        let mut written = 0;
        let mut first = true;
        while written < total {
            let start = out.len();
            out.put_u8(0x47);
            out.put_u8(if first { 0x40 } else { 0 } | (pid >> 8) as u8);
            out.put_u8(pid as u8);
            let cc = self.next_cc(pid);
            // Adaptation field: PCR and random access on the first packet.
            let mut af = Vec::new();
            if first && (with_pcr || random_access) {
                let mut flags = 0u8;
                if random_access {
                    flags |= 0x40;
                }
                if with_pcr {
                    flags |= 0x10;
                }
                af.push(flags);
                if with_pcr {
                    let base = pcr.saturating_sub(63_000) & 0x1_ffff_ffff; // PCR a little before DTS
                    af.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        ((base & 1) << 7) as u8 | 0x7e,
                        0,
                    ]);
                }
            }
            let left = total - written;
            let room = PACKET - 4 - if af.is_empty() { 0 } else { 1 + af.len() };
            if left < room {
                // Stuff the last packet through the adaptation field.
                let stuff = room - left;
                if af.is_empty() {
                    if stuff == 1 {
                        out.put_u8(0x30 | cc);
                        out.put_u8(0);
                    } else {
                        out.put_u8(0x30 | cc);
                        out.put_u8((stuff - 1) as u8);
                        out.put_u8(0);
                        out.put_bytes(0xff, stuff - 2);
                    }
                } else {
                    out.put_u8(0x30 | cc);
                    out.put_u8((af.len() + stuff) as u8);
                    out.put_slice(&af);
                    out.put_bytes(0xff, stuff);
                }
            } else if af.is_empty() {
                out.put_u8(0x10 | cc);
            } else {
                out.put_u8(0x30 | cc);
                out.put_u8(af.len() as u8);
                out.put_slice(&af);
            }
            let n = PACKET - (out.len() - start);
            for i in 0..n {
                let k = written + i;
                out.put_u8(if k < head.len() {
                    head[k]
                } else {
                    es[k - head.len()]
                });
            }
            written += n;
            first = false;
        }
    }
}

/// A 33-bit PES timestamp with its 4-bit prefix and marker bits.
fn put_ts(out: &mut Vec<u8>, prefix: u8, t: u64) {
    let t = t & 0x1_ffff_ffff;
    out.push((prefix << 4) | (((t >> 30) as u8 & 7) << 1) | 1);
    out.push((t >> 22) as u8);
    out.push((((t >> 15) as u8) << 1) | 1);
    out.push((t >> 7) as u8);
    out.push(((t as u8) << 1) | 1);
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, no final xor).
pub fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= (*b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_known_answer() {
        // CRC-32/MPEG-2 check value of "123456789".
        assert_eq!(crc32_mpeg(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn packets_are_whole_with_running_counters() {
        let mut m = Muxer::new(Some(VideoCodec::H264), true);
        // avcC: version 1, profile, compat, level, 4-byte lengths, 1 SPS, 1 PPS
        let rec = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 1, 2, 1, 0, 2, 0x68, 3,
        ];
        m.video_config(VideoCodec::H264, &rec).unwrap();
        m.audio_config(&[0x12, 0x10]).unwrap();
        let mut out = BytesMut::new();
        m.tables(&mut out);
        let mut frame = vec![0, 0, 0x10, 0];
        frame.extend_from_slice(&[0x65; 0x1000]);
        m.video(&frame, 0, 40, true, &mut out).unwrap();
        m.audio(&[0x21; 300], 0, &mut out).unwrap();
        m.video(&[0, 0, 0, 2, 0x41, 9], 40, 0, false, &mut out)
            .unwrap();
        assert_eq!(out.len() % PACKET, 0);
        let mut last = std::collections::HashMap::new();
        for p in out.chunks(PACKET) {
            assert_eq!(p[0], 0x47);
            let pid = (((p[1] & 0x1f) as u16) << 8) | p[2] as u16;
            let cc = p[3] & 0x0f;
            if let Some(prev) = last.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 0x0f, "pid {pid:#x}");
            }
        }
        assert!(
            m.video(&[0, 0, 0, 9, 1], 0, 0, false, &mut out).is_err(),
            "NAL past the end"
        );
    }
}
