// Playback of every peer's audio: a jitter buffer per peer, mixed into one output.
// The page hands it a port ({port}) to the call's worker, which sends on it
// {session (decimal text), samples: Float32Array (48 kHz mono)} or {remove: session};
// out on the same port (about 4 per second): {peers: [[session, rms level, played ms], ...]}.

// Start playing a peer once this much is buffered: absorbs network jitter.
const TARGET = 0.06 * sampleRate;
// Above this, drop the oldest audio: latency must not build up after a burst.
const MAX = 0.2 * sampleRate;

class PeerMixer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.peers = new Map();
    this.sinceReport = 0;
    this.call = null;
    this.port.onmessage = (e) => {
      if (!e.data.port) return;
      if (this.call) this.call.close();
      this.call = e.data.port;
      this.call.onmessage = (m) => this.receive(m.data);
    };
  }

  receive(d) {
    if (d.remove !== undefined) { this.peers.delete(d.remove); return; }
    let p = this.peers.get(d.session);
    if (!p) { p = { chunks: [], offset: 0, buffered: 0, playing: false, played: 0, energy: 0, count: 0, level: 0 }; this.peers.set(d.session, p); }
    p.chunks.push(d.samples);
    p.buffered += d.samples.length;
    while (p.buffered - p.offset > MAX && p.chunks.length > 1) {
      const dropped = p.chunks.shift();
      p.buffered -= dropped.length;
      p.offset = 0;
    }
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const left = out[0];
    left.fill(0);
    for (const p of this.peers.values()) {
      if (!p.playing && p.buffered - p.offset >= TARGET) p.playing = true;
      if (!p.playing) continue;
      let i = 0;
      while (i < left.length && p.chunks.length) {
        const chunk = p.chunks[0];
        const n = Math.min(left.length - i, chunk.length - p.offset);
        for (let k = 0; k < n; k++) {
          const s = chunk[p.offset + k];
          left[i + k] += s;
          p.energy += s * s;
        }
        p.count += n;
        i += n;
        p.offset += n;
        if (p.offset >= chunk.length) { p.chunks.shift(); p.buffered -= chunk.length; p.offset = 0; }
      }
      p.played += i;
      // Ran dry: wait for the buffer to refill rather than play every packet the moment it lands.
      if (i < left.length) p.playing = false;
    }
    for (let c = 1; c < out.length; c++) out[c].set(left);
    this.sinceReport += left.length;
    if (this.sinceReport >= sampleRate / 4) {
      this.sinceReport = 0;
      const peers = [];
      for (const [session, p] of this.peers) {
        p.level = p.count ? Math.sqrt(p.energy / p.count) : 0;
        p.energy = 0; p.count = 0;
        peers.push([session, p.level, (p.played / sampleRate) * 1000]);
      }
      if (this.call) this.call.postMessage({ peers });
    }
    return true;
  }
}

registerProcessor("peer-mixer", PeerMixer);
