// The file form: POST /v1/audio/transcriptions, show the result, offer it as a download
// named after the file with the format's extension.

import { transcribeFile } from "./api.js";

const EXTENSIONS = { json: "json", verbose_json: "json", text: "txt", srt: "srt", vtt: "vtt" };
const MEDIA_TYPES = {
  json: "application/json",
  verbose_json: "application/json",
  text: "text/plain",
  srt: "application/x-subrip",
  vtt: "text/vtt",
};

function downloadName(fileName, format) {
  const stem = fileName.replace(/\.[^.]+$/, "") || "transcript";
  return `${stem}.${EXTENSIONS[format]}`;
}

export function setUpUpload(elements, settings, showError) {
  const { form, file, format, button, status, box, result, download } = elements;
  let objectUrl = null;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) {
      showError("Choose an audio file first.");
      file.focus();
      return;
    }
    const model = settings.model();
    if (!model) {
      showError("No model is selected. Load the models (check the API key).");
      return;
    }
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.textContent = `Transcribing ${chosen.name} with ${model}…`;
    const started = performance.now();
    try {
      const output = await transcribeFile({
        apiKey: settings.apiKey(),
        file: chosen,
        model,
        format: format.value,
        language: settings.language(),
        hotWords: settings.hotWords(),
      });
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(new Blob([output.body], { type: MEDIA_TYPES[format.value] }));
      result.textContent = output.text;
      download.href = objectUrl;
      download.download = downloadName(chosen.name, format.value);
      download.textContent = `Download ${download.download}`;
      box.hidden = false;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      status.textContent = `Done in ${seconds} s.`;
      showError(null);
    } catch (error) {
      status.textContent = "";
      showError(`Transcription failed: ${error.message}`);
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}
