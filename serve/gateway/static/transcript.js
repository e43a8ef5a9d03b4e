// The live transcript list: finals as lines with their stream times, and the open
// utterance's partial as the last line, replaced in place by each new partial: its stable
// words (confirmed, kept by the final) as they are, its unstable tail greyed.

export function clock(ms) {
  const total = Math.max(0, ms) / 1000;
  const minutes = Math.floor(total / 60);
  const seconds = (total - minutes * 60).toFixed(1).padStart(4, "0");
  return `${String(minutes).padStart(2, "0")}:${seconds}`;
}

function line(className, timeText, text) {
  const item = document.createElement("li");
  item.className = className;
  const time = document.createElement("time");
  time.textContent = timeText;
  const span = document.createElement("span");
  span.className = "text";
  span.textContent = text;
  item.append(time, span);
  return item;
}

function fillPartial(span, stableText, unstableText) {
  const stable = document.createElement("span");
  stable.className = "stable";
  stable.textContent = stableText;
  const unstable = document.createElement("span");
  unstable.className = "unstable";
  unstable.textContent = unstableText;
  const gap = stableText && unstableText ? " " : "";
  span.replaceChildren(stable, gap, unstable);
}

export class TranscriptView {
  constructor(list) {
    this.list = list;
    this.partial = null;
  }

  // `startMs`: where the utterance's speech started (vad.speech_start), when known. An empty
  // partial takes back what was shown (the utterance held no speech after all).
  showPartial(event, startMs) {
    if (!event.text) {
      this.dropPartial();
      return;
    }
    const timeText = `${clock(startMs ?? event.timestamp_ms)} – …`;
    if (!this.partial) {
      this.partial = line("partial", timeText, "");
      this.partial.setAttribute("aria-hidden", "true");
      this.list.append(this.partial);
    }
    this.partial.dataset.segment = String(event.segment_id);
    this.partial.querySelector("time").textContent = timeText;
    fillPartial(this.partial.querySelector(".text"), event.stable ?? event.text, event.unstable ?? "");
    this.scroll();
  }

  showFinal(event) {
    if (!event.text.trim()) {
      this.dropPartial();
      return;
    }
    const item = line("final", `${clock(event.start_ms)} – ${clock(event.end_ms)}`, event.text);
    item.dataset.segment = String(event.segment_id);
    if (this.partial) {
      this.partial.replaceWith(item);
      this.partial = null;
    } else {
      this.list.append(item);
    }
    this.scroll();
  }

  dropPartial() {
    this.partial?.remove();
    this.partial = null;
  }

  clear() {
    this.list.replaceChildren();
    this.partial = null;
  }

  scroll() {
    this.list.scrollTop = this.list.scrollHeight;
  }
}
