// The microphone as a source of PCM16 chunks: getUserMedia -> AudioContext ->
// AudioWorklet ("pcm16-sender"). `openMicrophone(onChunk)` resolves to {rate, close}.

const RESUME_WAIT_MS = 3000;

export class MicrophoneError extends Error {}

function explain(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The browser did not allow the microphone. Allow it for this page and try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found.";
    case "NotReadableError":
      return "The microphone is in use by another application or cannot be read.";
    default:
      return `The microphone could not be started (${error?.message ?? error}).`;
  }
}

export async function openMicrophone(onChunk) {
  if (!navigator.mediaDevices?.getUserMedia || !window.AudioWorkletNode) {
    throw new MicrophoneError(
      "This browser cannot stream the microphone here (a secure origin — https or " +
        "localhost — and AudioWorklet support are needed).",
    );
  }
  const context = new AudioContext();
  let stream;
  try {
    await context.audioWorklet.addModule("/ui/pcm-worklet.js");
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    await context.close();
    throw new MicrophoneError(explain(error));
  }
  const node = new AudioWorkletNode(context, "pcm16-sender", {
    numberOfInputs: 1,
    numberOfOutputs: 0,
    channelCount: 1,
    channelCountMode: "explicit",
  });
  const rate = await new Promise((resolve) => {
    node.port.onmessage = (message) => {
      if (message.data.type === "rate") {
        node.port.onmessage = (next) => {
          if (next.data.type === "audio") onChunk(next.data.pcm);
        };
        resolve(message.data.rate);
      }
    };
  });
  context.createMediaStreamSource(stream).connect(node);
  await Promise.race([context.resume(), new Promise((resolve) => setTimeout(resolve, RESUME_WAIT_MS))]);
  if (context.state !== "running") {
    for (const track of stream.getTracks()) track.stop();
    await context.close();
    throw new MicrophoneError(
      "The browser kept audio processing paused (autoplay policy). Click Start microphone again.",
    );
  }
  return {
    rate,
    async close() {
      for (const track of stream.getTracks()) track.stop();
      node.port.onmessage = null;
      node.disconnect();
      await context.close();
    },
  };
}
