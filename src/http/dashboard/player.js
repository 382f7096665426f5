// Sluice's embedded HTTP-FLV player: reads an FLV stream with fetch(),
// rewraps H.264 and AAC as fragmented MP4 and feeds Media Source
// Extensions. No library: the dashboard ships inside the binary and must
// work offline. Only what Sluice's HTTP-FLV carries for browsers is
// handled (legacy AVC and AAC tags); anything else stops with a message.
"use strict";

const u8 = (...a) => new Uint8Array(a);
const u16 = (v) => u8(v >> 8, v & 255);
const u32 = (v) => u8(v >>> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
const u64 = (v) => {
  const hi = Math.floor(v / 4294967296);
  return concat(u32(hi), u32(v >>> 0));
};
const str = (s) => new TextEncoder().encode(s);
const zeros = (n) => new Uint8Array(n);

function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function box(type, ...payload) {
  const body = concat(...payload);
  return concat(u32(body.length + 8), str(type), body);
}

const full = (type, version, flags, ...payload) =>
  box(type, u8(version, (flags >> 16) & 255, (flags >> 8) & 255, flags & 255), ...payload);

const MATRIX = concat(u32(0x10000), u32(0), u32(0), u32(0), u32(0x10000), u32(0), u32(0), u32(0), u32(0x40000000));
const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

function trak(id, handler, width, height, entry) {
  const video = handler === "vide";
  const tkhd = full("tkhd", 0, 3, u32(0), u32(0), u32(id), u32(0), u32(0), zeros(8), u16(0), u16(0),
    u16(video ? 0 : 0x100), u16(0), MATRIX, u32(width << 16), u32(height << 16));
  const mdhd = full("mdhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), u16(0x55c4), u16(0));
  const hdlr = full("hdlr", 0, 0, u32(0), str(handler), zeros(12), u8(0));
  const xmhd = video ? full("vmhd", 0, 1, zeros(8)) : full("smhd", 0, 0, zeros(4));
  const dinf = box("dinf", full("dref", 0, 0, u32(1), full("url ", 0, 1)));
  const stbl = box("stbl", full("stsd", 0, 0, u32(1), entry), full("stts", 0, 0, u32(0)),
    full("stsc", 0, 0, u32(0)), full("stsz", 0, 0, u32(0), u32(0)), full("stco", 0, 0, u32(0)));
  return box("trak", tkhd, box("mdia", mdhd, hdlr, box("minf", xmhd, dinf, stbl)));
}

function avc1(avcc, width, height) {
  return box("avc1", zeros(6), u16(1), zeros(16), u16(width), u16(height), u32(0x480000), u32(0x480000),
    u32(0), u16(1), zeros(32), u16(0x18), u16(0xffff), box("avcC", avcc));
}

function mp4a(asc, channels, rate) {
  const desc = (tag, body) => concat(u8(tag, body.length), body);
  const dsi = desc(5, asc);
  const dcd = desc(4, concat(u8(0x40, 0x15), zeros(3), u32(0), u32(0), dsi));
  const esd = desc(3, concat(u16(1), u8(0), dcd, desc(6, u8(2))));
  return box("mp4a", zeros(6), u16(1), zeros(8), u16(channels), u16(16), zeros(4), u32(rate << 16),
    full("esds", 0, 0, esd));
}

function fragment(seq, track, base, samples) {
  const n = samples.length;
  const trunLen = 12 + 8 + 16 * n;
  const moofLen = 8 + 16 + 8 + 16 + 20 + trunLen;
  const entries = samples.map((s) => concat(u32(s.duration), u32(s.data.length), u32(s.flags), u32(s.cts)));
  const trun = full("trun", 0, 0xf01, u32(n), u32(moofLen + 8), ...entries);
  const traf = box("traf", full("tfhd", 0, 0x20000, u32(track)), full("tfdt", 1, 0, u64(base)), trun);
  const moof = box("moof", full("mfhd", 0, 0, u32(seq)), traf);
  const mdat = box("mdat", ...samples.map((s) => s.data));
  return concat(moof, mdat);
}

/** Plays `url` (HTTP-FLV) in `video`. Returns a function that stops it. */
export function playFlv(video, url, opts = {}) {
  const width = opts.width || 640;
  const height = opts.height || 360;
  const ms = new MediaSource();
  const abort = new AbortController();
  let sb = null;
  let seq = 1;
  const queue = [];
  const tracks = { video: null, audio: null };
  const pending = { 1: [], 2: [] };
  let base = null;
  let tagsBeforeInit = 0;
  const onError = opts.onError || ((e) => console.warn("player:", e));

  video.src = URL.createObjectURL(ms);

  function pump() {
    if (!sb || sb.updating || !queue.length) return;
    try {
      sb.appendBuffer(queue.shift());
    } catch (e) {
      onError(e);
    }
  }

  function init() {
    const v = tracks.video;
    const a = tracks.audio;
    const codecs = [];
    const traks = [];
    const trex = [];
    if (v) {
      const c = Array.from(v.avcc.slice(1, 4), (b) => b.toString(16).padStart(2, "0")).join("");
      codecs.push("avc1." + c);
      traks.push(trak(1, "vide", width, height, avc1(v.avcc, width, height)));
      trex.push(full("trex", 0, 0, u32(1), u32(1), u32(0), u32(0), u32(0)));
    }
    if (a) {
      codecs.push("mp4a.40." + (a.asc[0] >> 3));
      traks.push(trak(2, "soun", 0, 0, mp4a(a.asc, a.channels, a.rate)));
      trex.push(full("trex", 0, 0, u32(2), u32(1), u32(0), u32(0), u32(0)));
    }
    const mvhd = full("mvhd", 0, 0, u32(0), u32(0), u32(1000), u32(0), u32(0x10000), u16(0x100), zeros(10),
      MATRIX, zeros(24), u32(3));
    const ftyp = box("ftyp", str("isom"), u32(512), str("isomiso2avc1mp41"));
    const moov = box("moov", mvhd, ...traks, box("mvex", ...trex));
    const mime = `video/mp4; codecs="${codecs.join(",")}"`;
    if (!MediaSource.isTypeSupported(mime)) {
      onError(new Error("browser cannot play " + mime));
      abort.abort();
      return;
    }
    sb = ms.addSourceBuffer(mime);
    sb.mode = "segments";
    sb.addEventListener("updateend", () => {
      pump();
      // Stay near the live edge.
      const b = video.buffered;
      if (b.length && b.end(b.length - 1) - video.currentTime > 3) {
        video.currentTime = b.end(b.length - 1) - 0.5;
      }
    });
    queue.push(concat(ftyp, moov));
    pump();
  }

  function flush(track, keepLast) {
    const list = pending[track];
    const take = keepLast ? list.length - 1 : list.length;
    if (take <= 0) return;
    const samples = list.splice(0, take);
    for (let i = 0; i < samples.length; i++) {
      const next = i + 1 < samples.length ? samples[i + 1] : list[0];
      samples[i].duration = next ? Math.max(0, next.dts - samples[i].dts) : (track === 1 ? 40 : 23);
    }
    queue.push(fragment(seq++, track, samples[0].dts, samples));
    pump();
  }

  function onTag(type, ts, d) {
    // Enhanced RTMP multitrack messages carry a stream's other tracks
    // (ffmpeg 9 and OBS send the default track as plain tags): the player
    // shows the default track.
    if (type === 9 && (d[0] & 0x8f) === 0x86) return;
    if (type === 8 && d[0] >> 4 === 9 && (d[0] & 0x0f) === 5) return;
    if (type === 9 && d.length > 5) {
      if ((d[0] & 0x0f) !== 7) throw new Error("only H.264 video plays here");
      const key = d[0] >> 4 === 1;
      if (d[1] === 0) {
        if (!tracks.video) tracks.video = { avcc: d.slice(5) };
        return;
      }
      if (d[1] !== 1) return;
      const cts = ((d[2] << 16) | (d[3] << 8) | d[4]) << 8 >> 8;
      push(1, ts, { data: d.subarray(5), cts: Math.max(0, cts), flags: key ? 0x02000000 : 0x01010000, key });
    } else if (type === 8 && d.length > 2) {
      if (d[0] >> 4 !== 10) throw new Error("only AAC audio plays here");
      if (d[1] === 0) {
        if (!tracks.audio) {
          const asc = d.slice(2);
          const rate = AAC_RATES[((asc[0] & 7) << 1) | (asc[1] >> 7)] || 44100;
          tracks.audio = { asc, rate, channels: (asc[1] >> 3) & 15 || 2 };
        }
        return;
      }
      push(2, ts, { data: d.subarray(2), cts: 0, flags: 0x02000000, key: true });
    }
  }

  function push(track, ts, s) {
    if (!sb) {
      // Wait for both headers (or give up on audio after a few tags).
      tagsBeforeInit++;
      if (tracks.video && (tracks.audio || tagsBeforeInit > 50)) init();
      if (!sb) return;
    }
    if (track === 2 && !tracks.audio) return;
    if (track === 1 && pending[1].length === 0 && !s.key && seq === 1) return;
    if (base === null) base = ts;
    s.dts = Math.max(0, ts - base);
    pending[track].push(s);
    if (pending[track].length >= (track === 1 ? 2 : 4)) flush(track, true);
  }

  ms.addEventListener("sourceopen", async () => {
    try {
      const resp = await fetch(url, { signal: abort.signal });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const reader = resp.body.getReader();
      let buf = new Uint8Array(0);
      let skip = 13; // FLV header (9) + PreviousTagSize0 (4)
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf = concat(buf, value);
        if (skip > 0) {
          if (buf.length < skip) continue;
          buf = buf.subarray(skip);
          skip = 0;
        }
        let p = 0;
        while (buf.length - p >= 15) {
          const size = (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3];
          if (buf.length - p < 11 + size + 4) break;
          const ts = ((buf[p + 7] << 24) | (buf[p + 4] << 16) | (buf[p + 5] << 8) | buf[p + 6]) >>> 0;
          onTag(buf[p], ts, buf.slice(p + 11, p + 11 + size));
          p += 11 + size + 4;
        }
        buf = buf.subarray(p);
      }
    } catch (e) {
      if (e.name !== "AbortError") onError(e);
    }
  });

  video.play().catch(() => {});
  return () => {
    abort.abort();
    try {
      if (ms.readyState === "open") ms.endOfStream();
    } catch (_) {}
    video.removeAttribute("src");
    video.load();
  };
}
