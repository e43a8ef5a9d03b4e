// AudioWorklet processor: microphone samples (mono mix) -> PCM16 little-endian chunks of
// 100 ms, posted to the page. The server takes 8, 16, 24 or 48 kHz: at those context rates
// the samples pass as they are; at any other rate (44.1 kHz...) they are low-passed with a
// moving average and linearly resampled to 16 kHz here.

const SUPPORTED_RATES = [8000, 16000, 24000, 48000];
const FALLBACK_RATE = 16000;

class Pcm16Sender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.outRate = SUPPORTED_RATES.includes(sampleRate) ? sampleRate : FALLBACK_RATE;
    this.step = sampleRate / this.outRate;
    this.window = Math.max(1, Math.round(this.step));
    this.history = new Float32Array(this.window);
    this.historySum = 0;
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
    this.historySum += sample - this.history[this.historyAt];
    this.history[this.historyAt] = sample;
    this.historyAt = (this.historyAt + 1) % this.window;
    return this.historySum / this.window;
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
