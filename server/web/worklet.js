// AudioWorklet: microphone samples at the context's rate -> 16 kHz PCM16 chunks for the server.
//
// A polyphase windowed-sinc resampler: each output sample is a low-passed interpolation
// of the input around its fractional position, so 44.1/48 kHz input does not alias
// into the 0-8 kHz band the recogniser hears. Chunks of `chunkMs` go to the page
// through the port as Int16Array (little-endian on every platform browsers run on).

const PHASES = 256; // fractional positions the kernel table is computed for
const ZERO_CROSSINGS = 8; // sinc lobes on each side of the centre

class Pcm16Resampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.chunk = Math.round((this.outRate * (opts.chunkMs || 100)) / 1000);
    // Cut-off below the output's Nyquist frequency, in cycles per input sample.
    const fc = 0.45 * Math.min(1, this.outRate / sampleRate);
    this.half = Math.ceil(ZERO_CROSSINGS / (2 * fc)); // taps on each side
    this.table = this.kernels(fc);
    this.history = new Float32Array(0); // input not yet fully used
    this.pos = this.half; // position of the next output sample in `history`
    this.out = new Int16Array(this.chunk);
    this.filled = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") {
        this.post();
        this.port.postMessage("flushed");
      }
    };
  }

  kernels(fc) {
    // table[p][j]: weight of input sample (i0 - half + 1 + j) for an output at i0 + p / PHASES.
    const taps = 2 * this.half;
    const table = [];
    for (let p = 0; p <= PHASES; p++) {
      const frac = p / PHASES;
      const row = new Float32Array(taps);
      let sum = 0;
      for (let j = 0; j < taps; j++) {
        const d = j - this.half + 1 - frac; // distance from the output position
        const x = 2 * Math.PI * fc * d;
        const sinc = d === 0 ? 1 : Math.sin(x) / x;
        const w = 0.5 + 0.5 * Math.cos((Math.PI * d) / (this.half + 1)); // Hann window
        row[j] = sinc * w;
        sum += row[j];
      }
      for (let j = 0; j < taps; j++) row[j] /= sum; // unit gain at DC
      table.push(row);
    }
    return table;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || input[0].length === 0) return true;
    const mono = input[0]; // the page asks for one channel
    const joined = new Float32Array(this.history.length + mono.length);
    joined.set(this.history);
    joined.set(mono, this.history.length);
    const taps = 2 * this.half;
    while (this.pos + this.half < joined.length) {
      const i0 = Math.floor(this.pos);
      const row = this.table[Math.round((this.pos - i0) * PHASES)];
      let acc = 0;
      const base = i0 - this.half + 1;
      for (let j = 0; j < taps; j++) acc += joined[base + j] * row[j];
      const clipped = Math.max(-1, Math.min(1, acc));
      this.out[this.filled++] = Math.round(clipped * 32767);
      if (this.filled === this.chunk) this.post();
      this.pos += this.step;
    }
    const keep = Math.max(0, Math.floor(this.pos) - this.half); // what the next outputs still need
    this.history = joined.slice(keep);
    this.pos -= keep;
    return true;
  }

  post() {
    if (this.filled === 0) return;
    const chunk = this.out.slice(0, this.filled);
    this.port.postMessage(chunk, [chunk.buffer]);
    this.filled = 0;
  }
}

registerProcessor("pcm16-resampler", Pcm16Resampler);
