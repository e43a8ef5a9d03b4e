// REST calls of the page: model list and file transcription, with the API key as a Bearer
// header. Errors come back in OpenAI's shape and are thrown as ApiError with their message.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

function headers(apiKey) {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

async function failure(response) {
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    message = body?.error?.message ?? message;
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 401) {
    message = `${message} Enter the server's API key in Settings.`;
  }
  return new ApiError(response.status, `${response.status}: ${message}`);
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, `Cannot reach the server (${error.message}).`);
  }
  if (!response.ok) {
    throw await failure(response);
  }
  return response;
}

export async function listModels(apiKey) {
  const response = await send("/v1/models", { headers: headers(apiKey) });
  const body = await response.json();
  return body.data;
}

// Returns {text, body}: `text` is what to show, `body` the response as it came.
export async function transcribeFile({ apiKey, file, model, format, language, hotWords }) {
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("model", model);
  form.append("response_format", format);
  if (language) form.append("language", language);
  if (hotWords.length) form.append("hot_words", hotWords.join(","));
  const response = await send("/v1/audio/transcriptions", {
    method: "POST",
    headers: headers(apiKey),
    body: form,
  });
  const body = await response.text();
  if (format === "json") return { text: JSON.parse(body).text, body };
  if (format === "verbose_json") return { text: JSON.stringify(JSON.parse(body), null, 2), body };
  return { text: body, body };
}
