// Enrollment on the page: read prompts aloud, keep or re-take each take, adapt, then use the profile.
//
// Uses the server's enrollment endpoints (server/enroll_http.py): prompts, takes
// (PCM16 at 16 kHz, checked by the server), and one adaptation job with its progress.
"use strict";

window.asrEnroll = (() => {
  const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/; // asr.profiles.PROFILE_NAME
  const POLL_MS = 1000;
  let deps = null; // {api, Capture, RATE, refreshProfiles} from app.js
  const state = { prompt: null, capture: null, chunks: [], lastTake: null, polling: null };
  const $ = (id) => document.getElementById(id);

  function say(text, error = false) {
    $("enroll-status").textContent = text;
    $("enroll-status").classList.toggle("error", error);
  }

  function profile() {
    return $("enroll-profile").value;
  }

  function render() {
    $("enroll").hidden = false;
    $("enroll").innerHTML = `
      <h2>Your voice: enroll, adapt, use</h2>
      <p class="hint">Read a few sentences aloud; the server fine-tunes both models on them
        (a few minutes, at low priority), then the profile can be picked above.</p>
      <div class="row">
        <label>Profile <select id="enroll-profile"></select></label>
        <input id="enroll-new" placeholder="new profile name" maxlength="64">
        <button id="enroll-create" type="button">Create</button>
        <span id="enroll-count"></span>
      </div>
      <p class="prompt" id="enroll-prompt"></p>
      <div class="row">
        <button id="enroll-record" type="button" class="primary">Record</button>
        <button id="enroll-retake" type="button" disabled>Re-take</button>
        <button id="enroll-next" type="button" disabled>Next prompt</button>
      </div>
      <p id="enroll-status" role="status"></p>
      <div class="row">
        <button id="enroll-adapt" type="button" disabled>Start adaptation</button>
        <button id="enroll-use" type="button" hidden>Use this profile</button>
      </div>
      <progress id="enroll-progress" max="1" value="0" hidden></progress>
      <p id="enroll-job"></p>`;
    $("enroll-create").addEventListener("click", create);
    $("enroll-profile").addEventListener("change", () => selectProfile(profile()));
    $("enroll-record").addEventListener("click", () => (state.capture ? stopRecording() : startRecording()));
    $("enroll-retake").addEventListener("click", retake);
    $("enroll-next").addEventListener("click", () => nextPrompt());
    $("enroll-adapt").addEventListener("click", adapt);
    $("enroll-use").addEventListener("click", use);
  }

  async function loadProfiles(select) {
    const { profiles, job } = await deps.api("/api/profiles");
    const list = $("enroll-profile");
    const names = profiles.map((p) => p.name);
    if (select && !names.includes(select)) names.push(select); // created here, no take yet
    list.innerHTML = "";
    for (const name of names.sort()) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      list.appendChild(option);
    }
    if (!names.length) {
      const none = document.createElement("option");
      none.value = "";
      none.textContent = "none yet";
      list.appendChild(none);
    }
    if (select) list.value = select;
    if (job && (job.state === "running" || job.state === "starting")) follow();
    else if (job) showJob(job);
    return profiles;
  }

  function create() {
    const name = $("enroll-new").value.trim();
    if (!NAME.test(name)) {
      say("A profile name is letters, digits, '_' and '-' (at most 64).", true);
      return;
    }
    $("enroll-new").value = "";
    loadProfiles(name).then(() => selectProfile(name));
  }

  async function selectProfile(name) {
    state.lastTake = null;
    $("enroll-retake").disabled = true;
    $("enroll-next").disabled = true;
    $("enroll-use").hidden = true;
    if (!name) {
      $("enroll-count").textContent = "";
      $("enroll-prompt").textContent = "Create a profile to start.";
      $("enroll-record").disabled = true;
      return;
    }
    $("enroll-record").disabled = false;
    await showCount(name);
    await nextPrompt();
  }

  async function showCount(name) {
    try {
      const info = await deps.api(`/api/profiles/${encodeURIComponent(name)}`);
      countText(info);
    } catch (e) {
      countText({ recordings: 0, minutes: 0, adapted: false }); // no take yet
    }
  }

  function countText(info) {
    $("enroll-count").textContent = `${info.recordings} takes, ${info.minutes.toFixed(1)} min` + (info.adapted ? ", adapted" : "");
    $("enroll-adapt").disabled = info.recordings < 5;
    $("enroll-adapt").title = info.recordings < 5 ? "needs at least 5 takes" : "";
  }

  async function nextPrompt() {
    const { prompts, left } = await deps.api(`/api/prompts?profile=${encodeURIComponent(profile())}&n=1`);
    state.prompt = prompts[0] || null;
    state.lastTake = null;
    $("enroll-retake").disabled = true;
    $("enroll-next").disabled = true;
    $("enroll-prompt").textContent = state.prompt ? state.prompt.text : "Every prompt has a take.";
    $("enroll-record").disabled = !state.prompt;
    say(state.prompt ? `Press Record and read the sentence (${left} prompts left).` : "");
  }

  async function startRecording() {
    state.chunks = [];
    try {
      state.capture = await deps.Capture.open((chunk) => state.chunks.push(chunk.slice()));
    } catch (e) {
      say("No microphone: " + e.message, true);
      return;
    }
    $("enroll-record").textContent = "Stop";
    $("enroll-retake").disabled = true;
    $("enroll-next").disabled = true;
    say("Recording... read the sentence, then press Stop.");
  }

  async function stopRecording() {
    const capture = state.capture;
    state.capture = null;
    await capture.stop();
    $("enroll-record").textContent = "Record";
    const samples = state.chunks.reduce((n, c) => n + c.length, 0);
    const pcm = new Int16Array(samples);
    let at = 0;
    for (const chunk of state.chunks) {
      pcm.set(chunk, at);
      at += chunk.length;
    }
    say("Checking the take...");
    const query = new URLSearchParams({ rate: String(deps.RATE), text: state.prompt.text, prompt: String(state.prompt.prompt) });
    try {
      const { take, profile: info } = await deps.api(`/api/profiles/${encodeURIComponent(profile())}/takes?${query}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: pcm.buffer,
      });
      state.lastTake = take.take;
      countText(info);
      $("enroll-retake").disabled = false;
      $("enroll-next").disabled = false;
      say(`Kept (${take.duration.toFixed(1)} s). Re-take it, or go on to the next prompt.`);
    } catch (e) {
      say(e.message + ". Press Record to try again.", true);
    }
  }

  async function retake() {
    if (!state.lastTake) return;
    try {
      const { profile: info } = await deps.api(
        `/api/profiles/${encodeURIComponent(profile())}/takes/${encodeURIComponent(state.lastTake)}`,
        { method: "DELETE" },
      );
      countText(info);
    } catch (e) {
      say(e.message, true);
      return;
    }
    state.lastTake = null;
    $("enroll-retake").disabled = true;
    $("enroll-next").disabled = true;
    startRecording();
  }

  async function adapt() {
    try {
      await deps.api(`/api/profiles/${encodeURIComponent(profile())}/adapt`, { method: "POST" });
    } catch (e) {
      say(e.message, true);
      return;
    }
    follow();
  }

  function follow() {
    if (state.polling) return;
    $("enroll-adapt").disabled = true;
    $("enroll-progress").hidden = false;
    state.polling = setInterval(async () => {
      try {
        const { job } = await deps.api("/api/adapt");
        showJob(job);
        if (!job || (job.state !== "running" && job.state !== "starting")) {
          clearInterval(state.polling);
          state.polling = null;
          await deps.refreshProfiles();
          await showCount(profile());
        }
      } catch (e) {
        $("enroll-job").textContent = e.message;
      }
    }, POLL_MS);
  }

  function showJob(job) {
    if (!job) return;
    const bar = $("enroll-progress");
    const models = ["streaming", "offline"];
    const done = job.state === "done";
    const part = job.steps ? Math.min(1, job.step / job.steps) : 0;
    bar.hidden = false;
    bar.value = done ? 1 : (Math.max(0, models.indexOf(job.kind)) + part) / models.length;
    if (job.state === "failed") {
      $("enroll-job").textContent = `Adapting ${job.profile} failed: ${job.error}`;
    } else if (done) {
      const lines = Object.entries(job.report.models || {}).map(
        ([kind, m]) => `${kind}: held-out WER ${pct(m.before.wer)} -> ${pct(m.after.wer)}`,
      );
      $("enroll-job").textContent = `Adapted ${job.profile}. ${lines.join("; ")}.`;
      $("enroll-use").hidden = false;
      $("enroll-use").dataset.profile = job.profile;
    } else {
      const eta = job.eta_s ? `, about ${Math.ceil(job.eta_s / 60)} min left` : "";
      $("enroll-job").textContent = `Adapting ${job.profile}: ${job.kind || "starting"} ${job.phase} ${job.step}/${job.steps}${eta}`;
    }
  }

  function pct(x) {
    return x === null || x === undefined ? "?" : (100 * x).toFixed(1) + "%";
  }

  async function use() {
    await deps.refreshProfiles();
    document.getElementById("profile").value = $("enroll-use").dataset.profile;
    document.getElementById("transcript").scrollIntoView({ behavior: "smooth" });
  }

  return {
    async init(dependencies) {
      deps = dependencies;
      try {
        await deps.api("/api/profiles");
      } catch (e) {
        return; // no enrollment on this server, or it needs a token first
      }
      render();
      const profiles = await loadProfiles();
      await selectProfile(profiles.length ? profile() : "");
    },
  };
})();
