// AudioWorklet processor: microphone samples (mono mix) -> PCM16 little-endian chunks of
// 100 ms, posted to the page. The server takes 8, 16, 24 or 48 kHz: at those context rates
// the samples pass as they are; at any other rate (44.1 kHz...) they are low-passed (a
// Blackman-windowed sinc below the new Nyquist frequency) and linearly resampled to 16 kHz.

const SUPPORTED_RATES = [8000, 16000, 24000, 48000];
const FALLBACK_RATE = 16000;
const TAPS = 63;
const CUTOFF = 0.45; // of the output rate: just under its Nyquist frequency (0.5)

function lowpassTaps(inputRate, outputRate) {
  const fc = (CUTOFF * outputRate) / inputRate;
  const middle = (TAPS - 1) / 2;
  const taps = new Float32Array(TAPS);
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const x = i - middle;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const phase = (2 * Math.PI * i) / (TAPS - 1);
    const blackman = 0.42 - 0.5 * Math.cos(phase) + 0.08 * Math.cos(2 * phase);
    taps[i] = sinc * blackman;
    sum += taps[i];
  }
  return taps.map((tap) => tap / sum);
}

class Pcm16Sender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.outRate = SUPPORTED_RATES.includes(sampleRate) ? sampleRate : FALLBACK_RATE;
    this.step = sampleRate / this.outRate;
    this.taps = lowpassTaps(sampleRate, this.outRate);
    this.history = new Float32Array(TAPS);
    this.historyAt = 0;
    this.pending = [];
    this.position = 0;
    this.chunk = new Int16Array(this.outRate / 10);
    this.filled = 0;
    this.port.postMessage({ type: "rate", rate: this.outRate });
  }

  mono(channels) {
    if (channels.length === 1) return channels[0];
    const out = new Float32Array(channels[0].length);
    for (const channel of channels) {
      for (let i = 0; i < out.length; i++) out[i] += channel[i] / channels.length;
    }
    return out;
  }

  lowpass(sample) {
    this.history[this.historyAt] = sample;
    this.historyAt = (this.historyAt + 1) % TAPS;
    let out = 0;
    for (let i = 0; i < TAPS; i++) {
      out += this.taps[i] * this.history[(this.historyAt + i) % TAPS];
    }
    return out;
  }

  emit(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.chunk[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.filled === this.chunk.length) {
      this.port.postMessage({ type: "audio", pcm: this.chunk.buffer }, [this.chunk.buffer]);
      this.chunk = new Int16Array(this.outRate / 10);
      this.filled = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const samples = this.mono(channels);
    if (this.step === 1) {
      for (const sample of samples) this.emit(sample);
      return true;
    }
    for (const sample of samples) this.pending.push(this.lowpass(sample));
    while (this.position + 1 < this.pending.length) {
      const at = Math.floor(this.position);
      const frac = this.position - at;
      this.emit(this.pending[at] * (1 - frac) + this.pending[at + 1] * frac);
      this.position += this.step;
    }
    const used = Math.floor(this.position);
    this.pending.splice(0, used);
    this.position -= used;
    return true;
  }
}

registerProcessor("pcm16-sender", Pcm16Sender);
