// The page: microphone or file -> 16 kHz PCM16 -> vosk-server's WebSocket protocol -> captions.
//
// Protocol (the server speaks what vosk-server speaks): a text message
// {"config": {...}}, binary PCM16 mono little-endian chunks, then {"eof" : 1}. Each
// chunk gets one reply: {"partial": "..."} or a final {"text": "...", "result": [...]}.
"use strict";

const RATE = 16000; // what the page sends; the server also resamples other rates
const CHUNK_MS = 100;
const FILE_CHUNK_MS = 200;
const IN_FLIGHT = 4; // file chunks sent ahead of their replies

const $ = (id) => document.getElementById(id);

const app = {
  socket: null, // the open Vosk session, if any
  audio: null, // {context, stream, node} while the microphone runs
};

// ------------------------------------------------------------------ token
function token() {
  return $("token").value.trim();
}

function withToken(url) {
  const t = token();
  if (!t) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(t);
}

function takeTokenFromUrl() {
  // ?token=... opens the page with a token; it then leaves the address bar and history.
  const url = new URL(window.location.href);
  const t = url.searchParams.get("token") || sessionStorage.getItem("asr-token") || "";
  $("token").value = t;
  if (url.searchParams.has("token")) {
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  $("token").addEventListener("change", () => sessionStorage.setItem("asr-token", token()));
  if (t) sessionStorage.setItem("asr-token", t);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${path}: HTTP ${response.status}`);
  return body;
}

// ----------------------------------------------------------------- status
function status(text, error = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", error);
}

function setState(state) {
  document.body.dataset.state = state;
  $("mic").textContent = state === "listening" ? "Stop" : "Start microphone";
  $("file").disabled = state !== "idle";
  $("mode").disabled = state !== "idle";
  $("profile").disabled = state !== "idle";
}

// ------------------------------------------------------------- transcript
function showPartial(text) {
  $("partial").textContent = text;
}

function addFinal(message) {
  const words = message.result || [];
  const text = message.text || "";
  showPartial("");
  if (!text) return;
  const line = document.createElement("p");
  line.className = "line";
  if (words.length) {
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = words[0].start.toFixed(1) + " s";
    line.appendChild(meta);
    words.forEach((w, i) => {
      const span = document.createElement("span");
      span.className = "w" + (w.conf < 0.5 ? " low" : "");
      span.textContent = w.word;
      span.style.opacity = (0.35 + 0.65 * Math.max(0, Math.min(1, w.conf))).toFixed(2);
      span.title = `confidence ${w.conf.toFixed(2)}, ${w.start.toFixed(2)}-${w.end.toFixed(2)} s`;
      span.dataset.conf = w.conf;
      line.appendChild(span);
      if (i < words.length - 1) line.appendChild(document.createTextNode(" "));
    });
  } else {
    line.appendChild(document.createTextNode(text));
  }
  $("finals").appendChild(line);
}

// ------------------------------------------------------------ the session
class VoskSession {
  // One WebSocket session. `onReply` sees every reply; `closed` resolves on close.
  constructor(config, onReply) {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    this.ws = new WebSocket(withToken(`${scheme}://${window.location.host}/`));
    this.ws.binaryType = "arraybuffer";
    this.early = []; // audio captured while the connection opens, sent right after the config
    this.pending = 0;
    this.waiters = [];
    this.error = null;
    this.opened = new Promise((resolve, reject) => {
      this.ws.onopen = () => {
        this.ws.send(JSON.stringify({ config }));
        this.early.splice(0).forEach((chunk) => this.send(chunk));
        resolve();
      };
      this.ws.onerror = () => reject(new Error("could not connect (is the token right?)"));
    });
    this.closed = new Promise((resolve) => {
      this.ws.onclose = (event) => {
        this.waiters.splice(0).forEach((w) => w());
        resolve(event);
      };
    });
    this.ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.error) this.error = message.error;
      this.pending = Math.max(0, this.pending - 1);
      const waiter = this.waiters.shift();
      if (waiter) waiter();
      onReply(message);
    };
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(pcm16) {
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.early.push(pcm16.slice());
      return;
    }
    if (!this.open) return;
    this.pending += 1;
    this.ws.send(pcm16.buffer.byteLength === pcm16.byteLength ? pcm16.buffer : pcm16.slice().buffer);
  }

  async drain(limit) {
    // Wait until at most `limit` chunks await their replies (file streaming flow control).
    while (this.pending > limit && this.open) {
      await new Promise((resolve) => this.waiters.push(resolve));
    }
  }

  eof() {
    if (this.open) this.ws.send('{"eof" : 1}');
  }
}

function onReply(message) {
  if (message.error) {
    status("Server: " + message.error, true);
  } else if ("partial" in message) {
    showPartial(message.partial);
  } else if ("text" in message) {
    addFinal(message);
  }
}

function sessionConfig() {
  const config = { sample_rate: RATE, words: 1, model: $("mode").value };
  if ($("profile").value) config.profile = $("profile").value;
  return config;
}

// ------------------------------------------------------------- microphone
class Capture {
  // The microphone at 16 kHz PCM16: `onChunk(Int16Array)` gets each CHUNK_MS of audio.
  static async open(onChunk) {
    // Raw capture: the browser's echo cancellation and gain control changed the audio enough
    // to raise the word error rate (29.7% -> 19.8% on ten flite sentences through the page).
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const context = new AudioContext();
    try {
      await context.audioWorklet.addModule("worklet.js");
    } catch (e) {
      stream.getTracks().forEach((t) => t.stop());
      await context.close();
      throw e;
    }
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, "pcm16-resampler", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { targetRate: RATE, chunkMs: CHUNK_MS },
    });
    const mute = context.createGain(); // keeps the graph pulled without playing the microphone back
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(context.destination);
    return new Capture(stream, context, node, onChunk);
  }

  constructor(stream, context, node, onChunk) {
    this.stream = stream;
    this.context = context;
    this.node = node;
    this.onChunk = onChunk;
    this.flushed = null;
    node.port.onmessage = (event) => {
      if (event.data instanceof Int16Array) this.onChunk(event.data);
      else if (event.data === "flushed" && this.flushed) this.flushed();
    };
  }

  get rate() {
    return this.context.sampleRate;
  }

  async stop() {
    // Hand over what the resampler holds, then release the microphone.
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 300);
      this.flushed = () => {
        clearTimeout(timer);
        resolve();
      };
      this.node.port.postMessage("flush");
    });
    this.stream.getTracks().forEach((t) => t.stop());
    await this.context.close();
  }
}

async function startMic() {
  setState("starting");
  status("Asking for the microphone...");
  const session = new VoskSession(sessionConfig(), onReply);
  app.socket = session;
  try {
    app.audio = await Capture.open((chunk) => session.send(chunk));
    await session.opened;
  } catch (e) {
    await stopAudio();
    app.socket = null;
    session.ws.close();
    setState("idle");
    status(e.name === "NotAllowedError" || e.name === "NotFoundError" ? "No microphone: " + e.message : e.message, true);
    return;
  }
  setState("listening");
  status(`Listening (${$("mode").selectedOptions[0].textContent}, microphone at ${app.audio.rate} Hz, sent at 16 kHz).`);
  session.closed.then((event) => {
    if (app.socket === session) finishSession(event, session);
  });
}

async function stopAudio() {
  const audio = app.audio;
  app.audio = null;
  if (audio) await audio.stop();
}

async function stopMic() {
  setState("stopping");
  status("Finishing the last utterance...");
  await stopAudio();
  if (app.socket) app.socket.eof();
}

function finishSession(event, session) {
  app.socket = null;
  stopAudio();
  setState("idle");
  if (session.error) status("Stopped: " + session.error, true);
  else if (event.code === 1000) status("Done.");
  else status(`Connection closed (${event.code}${event.reason ? ": " + event.reason : ""}).`, true);
}

// ------------------------------------------------------------------- file
async function decodeTo16k(file) {
  // WebAudio decodes the container at its own rate; an offline context renders it at 16 kHz mono.
  const bytes = await file.arrayBuffer();
  const probe = new AudioContext();
  let decoded;
  try {
    decoded = await probe.decodeAudioData(bytes);
  } finally {
    probe.close();
  }
  const frames = Math.max(1, Math.ceil(decoded.duration * RATE));
  const offline = new OfflineAudioContext(1, frames, RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return rendered.getChannelData(0);
}

function toPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    out[i] = Math.round(Math.max(-1, Math.min(1, samples[i])) * 32767);
  }
  return out;
}

async function transcribeFile(file) {
  setState("file");
  status(`Decoding ${file.name}...`);
  let pcm;
  try {
    pcm = toPcm16(await decodeTo16k(file));
  } catch (e) {
    setState("idle");
    status(`Could not decode ${file.name}: ${e.message || e}`, true);
    return;
  }
  const session = new VoskSession(sessionConfig(), onReply);
  app.socket = session;
  try {
    await session.opened;
  } catch (e) {
    app.socket = null;
    setState("idle");
    status(e.message, true);
    return;
  }
  status(`Transcribing ${file.name} (${(pcm.length / RATE).toFixed(1)} s)...`);
  const step = (RATE * FILE_CHUNK_MS) / 1000;
  for (let i = 0; i < pcm.length && session.open; i += step) {
    await session.drain(IN_FLIGHT);
    session.send(pcm.subarray(i, i + step));
  }
  session.eof();
  const event = await session.closed;
  finishSession(event, session);
  $("file").value = "";
}

// ------------------------------------------------------------------ setup
async function loadModels() {
  try {
    const { models } = await api("/api/models");
    const labels = { stream: "streaming", "two-pass": "two-pass", offline: "offline (finals only)" };
    $("mode").innerHTML = "";
    for (const name of models) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = labels[name] || name;
      $("mode").appendChild(option);
    }
    if (models.includes("two-pass")) $("mode").value = "two-pass";
  } catch (e) {
    status(e.message, true);
  }
}

async function loadProfiles() {
  // Adapted profiles can be picked for a session; the selector shows once there is one.
  try {
    const { profiles } = await api("/api/profiles");
    const keep = $("profile").value;
    $("profile").innerHTML = '<option value="">base models</option>';
    for (const p of profiles.filter((p) => p.adapted)) {
      const option = document.createElement("option");
      option.value = p.name;
      option.textContent = p.name;
      $("profile").appendChild(option);
    }
    $("profile").value = profiles.some((p) => p.adapted && p.name === keep) ? keep : "";
    $("profile-box").hidden = $("profile").options.length < 2;
    return profiles;
  } catch (e) {
    return null; // a server without the enrollment endpoints, or no token yet
  }
}

function init() {
  takeTokenFromUrl();
  setState("idle");
  $("mic").addEventListener("click", () => {
    if (document.body.dataset.state === "idle") startMic();
    else if (document.body.dataset.state === "listening") stopMic();
  });
  $("file").addEventListener("change", () => {
    if ($("file").files.length) transcribeFile($("file").files[0]);
  });
  $("clear").addEventListener("click", () => {
    $("finals").innerHTML = "";
    showPartial("");
  });
  $("token").addEventListener("change", () => {
    loadModels();
    loadProfiles();
  });
  $("token-form").addEventListener("submit", (event) => event.preventDefault());
  loadModels();
  loadProfiles();
  const enroll = () => {
    if (window.asrEnroll) window.asrEnroll.init({ api, Capture, RATE, refreshProfiles: loadProfiles });
  };
  $("token").addEventListener("change", enroll);
  enroll();
}

document.addEventListener("DOMContentLoaded", init);
