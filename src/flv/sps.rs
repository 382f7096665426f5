//! The picture size of an H.264 or HEVC stream, read from the first
//! sequence parameter set of its decoder configuration record.
//!
//! Publishers put the size of their default track in `onMetaData`, but
//! nothing says how large a multitrack stream's other renditions are
//! (ffmpeg 9 sends no `videoTrackIdInfoMap`). The SPS does. Read on
//! demand for `/stat` and the dashboard, never per frame; every read is
//! bounded by the bytes present.

/// Reads bits MSB first from an RBSP (emulation prevention removed).
struct Bits<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.pos / 8)?;
        let v = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(v as u32)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.pos += n;
        (self.pos <= self.b.len() * 8).then_some(())
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some(acc << 1 | self.bit()?))
    }

    /// Exp-Golomb, unsigned. More than 31 leading zeros is no valid SPS.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// Width and height of the first SPS in an AVCDecoderConfigurationRecord.
pub fn avc_record_size(rec: &[u8]) -> Option<(u32, u32)> {
    // version, profile, compat, level, length size, SPS count, SPS length.
    if rec.len() < 8 || rec[0] != 1 || rec[5] & 0x1f == 0 {
        return None;
    }
    let len = u16::from_be_bytes([rec[6], rec[7]]) as usize;
    sps_size(rec.get(8..8 + len)?)
}

/// Width and height of the first SPS (NAL type 33) in an
/// HEVCDecoderConfigurationRecord.
pub fn hevc_record_size(rec: &[u8]) -> Option<(u32, u32)> {
    // 22 bytes of profile and format fields, then the NAL unit arrays.
    let arrays = *rec.get(22)?;
    let mut pos = 23;
    for _ in 0..arrays {
        let nal_type = rec.get(pos)? & 0x3f;
        let count = u16::from_be_bytes([*rec.get(pos + 1)?, *rec.get(pos + 2)?]);
        pos += 3;
        for _ in 0..count {
            let len = u16::from_be_bytes([*rec.get(pos)?, *rec.get(pos + 1)?]) as usize;
            let nal = rec.get(pos + 2..pos + 2 + len)?;
            if nal_type == 33 {
                return hevc_sps_size(nal);
            }
            pos += 2 + len;
        }
    }
    None
}

/// Width and height from an HEVC SPS NAL unit (with its 2-byte header).
pub fn hevc_sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let rbsp = unescape(nal.get(2..)?);
    let mut r = Bits { b: &rbsp, pos: 0 };
    r.bits(4)?; // sps_video_parameter_set_id
    let sub_layers = r.bits(3)?; // sps_max_sub_layers_minus1
    r.bit()?; // sps_temporal_id_nesting_flag
              // profile_tier_level: the general profile (88 bits) and level (8),
              // then per sub-layer presence flags, padding, and their fields.
    r.skip(96)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(sub_layers as usize) {
        *p = (r.bit()? == 1, r.bit()? == 1);
    }
    if sub_layers > 0 {
        r.skip(2 * (8 - sub_layers as usize))?;
    }
    for &(profile, level) in present.iter().take(sub_layers as usize) {
        r.skip(if profile { 88 } else { 0 } + if level { 8 } else { 0 })?;
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma = r.ue()?;
    if chroma == 3 {
        r.bit()?; // separate_colour_plane_flag
    }
    let (w, h) = (r.ue()?, r.ue()?);
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        (cl, cr, ct, cb) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    let (ux, uy) = match chroma {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let width = w.checked_sub(cl.checked_add(cr)?.checked_mul(ux)?)?;
    let height = h.checked_sub(ct.checked_add(cb)?.checked_mul(uy)?)?;
    Some((width, height))
}

/// Width and height from an H.264 SPS NAL unit (with its header byte).
pub fn sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let rbsp = unescape(nal.get(1..)?);
    let mut r = Bits { b: &rbsp, pos: 0 };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma = r.ue()?;
        if chroma == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit depths
        r.ue()?;
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            for i in 0..if chroma == 3 { 12 } else { 8 } {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let w_mbs = r.ue()?.checked_add(1)?;
    let h_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        (cl, cr, ct, cb) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
    }
    let field = 2 - frame_mbs_only;
    let (ux, uy) = match chroma {
        1 => (2, 2 * field),
        2 => (2, field),
        _ => (1, field),
    };
    // Every product checked: the numbers come from the peer.
    let width = w_mbs
        .checked_mul(16)?
        .checked_sub(cl.checked_add(cr)?.checked_mul(ux)?)?;
    let height = h_units
        .checked_mul(16 * field)?
        .checked_sub(ct.checked_add(cb)?.checked_mul(uy)?)?;
    Some((width, height))
}

fn skip_scaling_list(r: &mut Bits<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last as i64 + r.se()? as i64 + 256).rem_euclid(256) as i32;
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`).
fn unescape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut zeros = 0;
    for &x in b {
        if zeros >= 2 && x == 3 {
            zeros = 0;
            continue;
        }
        zeros = if x == 0 { zeros + 1 } else { 0 };
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn sizes_of_real_encoder_output() {
        // x264 as ffmpeg 9 and 5.1 make them: High 4:4:4 renditions
        // (320x240 and 160x120) and High 4:2:0 with bottom cropping.
        for (sps, size) in [
            (
                "67f4000d919b28283f6022000003000200000300641e28532c",
                (320, 240),
            ),
            (
                "67f4000b919b28508fc4e022000003000200000300641e28532c",
                (160, 120),
            ),
            (
                "67640028acd940780227e5c044000003000400000300c83c60c658",
                (1920, 1080),
            ),
            (
                "6764001eacd940a063f3e022000003000200000300643e28532c",
                (640, 360),
            ),
        ] {
            assert_eq!(sps_size(&hex(sps)), Some(size), "{sps}");
        }
        let mut rec = vec![1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 27];
        rec.extend(hex(
            "67640028acd940780227e5c044000003000400000300c83c60c658",
        ));
        assert_eq!(avc_record_size(&rec), Some((1920, 1080)));
        assert_eq!(avc_record_size(&rec[..20]), None, "short");
        assert_eq!(sps_size(&[0x67, 0x64]), None);
        assert_eq!(
            sps_size(&[0x67, 0x64, 0, 0, 0, 0, 0, 0, 0, 0]),
            None,
            "all zeros"
        );
        // Found by the media_body fuzz target: crop offsets whose product
        // with the crop unit overflowed.
        let crash = hex("67f40007000b919b28508fc4e822000003000200000300641e48");
        assert_eq!(sps_size(&crash), None);
    }

    #[test]
    fn hevc_sizes_of_x265_output() {
        // libx265 in ffmpeg 9: 320x240, and 1920x1080 (1088 coded lines,
        // cropped by the conformance window).
        for (sps, size) in [
            ("4201010408000003009e0800000300003c90014101e2cb2b2a5261780b7020200040000003004000000642", (320, 240)),
            ("4201010408000003009e08000003000078900078100220f89cb2b2a5261780b7020200040000030004000003006420", (1920, 1080)),
        ] {
            let nal = hex(sps);
            assert_eq!(hevc_sps_size(&nal), Some(size), "{sps}");
            // In a record: 22 bytes of header, one array of one SPS.
            let mut rec = vec![1u8; 22];
            rec.extend([1, 0x80 | 33, 0, 1, 0, nal.len() as u8]);
            rec.extend(&nal);
            assert_eq!(hevc_record_size(&rec), Some(size));
            assert_eq!(hevc_record_size(&rec[..rec.len() - 1]), None, "cut short");
        }
    }
}
