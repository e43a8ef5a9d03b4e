// The page: settings (API key, model, language, hot words), the error banner, and the
// microphone toggle with its VAD indicator. The live session and the file form have their
// own modules.

import { listModels } from "./api.js";
import { LiveSession, realtimeUrl } from "./live.js";
import { openMicrophone } from "./microphone.js";
import { TranscriptView } from "./transcript.js";
import { setUpUpload } from "./upload.js";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "theo.apiKey";

const VAD_LABELS = {
  off: "Microphone off",
  connecting: "Connecting…",
  listening: "Listening (silence)",
  speech: "Speech detected",
  hold: "On hold (long silence)",
};

const settings = {
  apiKey: () => $("api-key").value.trim(),
  model: () => $("model").value,
  language: () => $("language").value.trim(),
  hotWords: () =>
    $("hot-words")
      .value.split(",")
      .map((word) => word.trim())
      .filter(Boolean),
};

function showError(message) {
  const banner = $("error");
  if (!message) {
    banner.hidden = true;
    $("error-text").textContent = "";
    return;
  }
  $("error-text").textContent = message;
  banner.hidden = false;
}

function setVad(state) {
  $("vad").dataset.state = state;
  $("vad-label").textContent = VAD_LABELS[state];
}

let modelsRequest = 0;

async function loadModels() {
  const select = $("model");
  const previous = select.value;
  const request = ++modelsRequest;
  try {
    const models = await listModels(settings.apiKey());
    if (request !== modelsRequest) return; // a newer load (another key) answers instead
    select.replaceChildren(
      ...models.map((model) => {
        const option = document.createElement("option");
        option.value = model.id;
        const languages = model.capabilities?.languages ?? [];
        const tag = languages.length === 1 ? `, ${languages[0]}` : "";
        option.textContent = `${model.id} (${model.engine}${tag})`;
        return option;
      }),
    );
    if (models.some((model) => model.id === previous)) select.value = previous;
    if (!models.length) showError("The server has no models.");
    else showError(null);
  } catch (error) {
    if (request !== modelsRequest) return;
    select.replaceChildren();
    showError(`Could not load the models: ${error.message}`);
  }
}

// -- microphone -------------------------------------------------------------------------------
const view = new TranscriptView($("transcript"));
let live = null;
// Where the utterances seen so far started, and where the last final ended: a partial's line
// is timed from the later of its utterance's start and the previous final (the VAD's events
// come as they happen, so the next utterance may start before the last one's final).
let speechStarts = [];
let lastFinalEndMs = null;

function partialStart(event) {
  const starts = speechStarts.filter((start) => start <= event.timestamp_ms);
  const start = starts.length ? starts[starts.length - 1] : null;
  if (lastFinalEndMs !== null && (start === null || lastFinalEndMs > start)) return lastFinalEndMs;
  return start;
}

function onEvent(event) {
  switch (event.type) {
    case "session.created":
    case "vad.speech_end":
      setVad("listening");
      break;
    case "vad.speech_start":
      speechStarts = [...speechStarts.slice(-7), event.timestamp_ms];
      setVad("speech");
      break;
    case "session.hold":
      setVad("hold");
      break;
    case "transcript.partial":
      view.showPartial(event, partialStart(event));
      break;
    case "transcript.final":
      lastFinalEndMs = event.end_ms;
      view.showFinal(event);
      break;
    case "session.rate_limit":
    case "session.frames_dropped":
      $("live-notice").textContent = event.message;
      break;
    default:
      break;
  }
}

function micButton(running) {
  const button = $("mic");
  button.setAttribute("aria-pressed", String(running));
  button.textContent = running ? "Stop microphone" : "Start microphone";
}

async function stopLive() {
  const current = live;
  if (!current) return;
  live = null;
  $("mic").disabled = true;
  await current.microphone?.close();
  await current.session?.finish();
  view.dropPartial();
  setVad("off");
  micButton(false);
  $("mic").disabled = false;
}

async function startLive() {
  const model = settings.model();
  if (!model) {
    showError("No model is selected. Load the models (check the API key).");
    return;
  }
  showError(null);
  $("live-notice").textContent = "";
  const current = { session: null, microphone: null };
  live = current;
  micButton(true);
  setVad("connecting");
  const pending = [];
  try {
    current.microphone = await openMicrophone((chunk) =>
      current.session ? current.session.sendAudio(chunk) : pending.push(chunk),
    );
  } catch (error) {
    showError(error.message);
    live = null;
    micButton(false);
    setVad("off");
    return;
  }
  if (live !== current) {
    await current.microphone.close();
    return;
  }
  const url = realtimeUrl({ apiKey: settings.apiKey(), model, language: settings.language() });
  const config = { input_sample_rate: current.microphone.rate, hot_words: settings.hotWords() };
  speechStarts = [];
  lastFinalEndMs = null;
  current.session = new LiveSession(url, config, {
    onEvent,
    onError: (message, fatal) => {
      showError(message);
      if (fatal && live === current) stopLive();
    },
    onClosed: () => {
      if (live === current) stopLive();
    },
  });
  for (const chunk of pending.splice(0)) current.session.sendAudio(chunk);
}

// -- wiring -------------------------------------------------------------------------------------
function init() {
  const key = $("api-key");
  key.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
  key.addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORAGE, settings.apiKey());
    loadModels();
  });
  $("reload-models").addEventListener("click", loadModels);
  $("error-dismiss").addEventListener("click", () => showError(null));
  $("mic").addEventListener("click", () => (live ? stopLive() : startLive()));
  $("clear-transcript").addEventListener("click", () => view.clear());
  $("hot-words").addEventListener("change", () =>
    live?.session?.configure({ hot_words: settings.hotWords() }),
  );
  setUpUpload(
    {
      form: $("upload"),
      file: $("file"),
      format: $("format"),
      button: $("transcribe"),
      status: $("upload-status"),
      box: $("result-box"),
      result: $("result"),
      download: $("download"),
    },
    settings,
    showError,
  );
  setVad("off");
  loadModels();
}

init();
