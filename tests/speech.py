"""Speech made at test time: sentences spoken by `espeak-ng` (installed on first use, like the
other Debian packages the tests need) and the shared real clips, joined with pauses into long
files. Deterministic: the same arguments give the same audio."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

import numpy as np

from engines.base import SAMPLE_RATE, Audio
from serve.audio import decode_audio_bytes
from tests.support import clips
from tests.system_packages import ensure_packages

MENU = (
    "For billing questions, press 3.",
    "To speak with a nurse, press 5.",
    "To hear your account balance, press 2.",
    "For opening hours and directions, press 6.",
    "To report a lost or stolen card, press 7.",
    "To repeat this menu, press 9.",
    "For technical support, press 4.",
    "To pay a bill by phone, press 8.",
    "To change your appointment, press 1.",
    "For the pharmacy, press 3.",
    "For questions about your order, press 6.",
    "To leave a message for the doctor, press 2.",
)
"""Phone-menu sentences: one spoken number each, written the same way in every window."""

SENTENCES = (
    "Thank you for calling the city library.",
    "Our opening hours are nine to five, Monday to Friday.",
    "The train to Boston leaves from the north platform every evening.",
    "Please have your account number ready before you speak to an agent.",
    "The museum will be closed on the first Monday of every month.",
    "The weather tomorrow will be cloudy with a chance of rain in the afternoon.",
    "She walked along the river and watched the boats drift slowly toward the sea.",
    "The committee approved the new budget after a long discussion about the roads.",
    "Visit our website or call back during business hours.",
    "The children planted tomatoes, beans and sunflowers in the school garden.",
    "Remember to bring a photo identification and proof of address to your appointment.",
    "The concert starts at eight o'clock, and the doors open one hour earlier.",
    "A small bakery on the corner sells fresh bread every morning before sunrise.",
    "The package was delivered to the front desk this morning.",
    "Scientists measured the temperature of the lake every day for three years.",
    "Our new office is on the third floor of the building next to the bank.",
    "Please leave your name, your phone number and a short message after the tone.",
    "The football match was postponed because of heavy snow across the region.",
    "He repaired the old bicycle and rode it to work for the rest of the summer.",
    "Tickets can be exchanged up to two days before the performance.",
    "The farmer sold apples, pears and plums at the market on Saturday.",
    "The bridge will be closed for repairs between midnight and dawn.",
    "Students must return their laptops to the front office before the holidays.",
    "A strong wind blew through the valley and knocked down several old trees.",
    "Our team will call you back within two business days to confirm the details.",
    "The restaurant serves breakfast until eleven and dinner from six to ten.",
    "Please stay on the line. Your call is important to us.",
    "The flight from Chicago has been delayed by about forty minutes.",
    "She read the letter twice and then put it carefully back in the drawer.",
    "The town council meets on the second Tuesday of each month.",
    "The river flooded the lower fields after a week of steady rain.",
    "Your reservation for two guests is confirmed for Friday evening.",
    "The lighthouse has guided ships along this rocky coast for over a century.",
    "All of our agents are busy helping other customers.",
    "The garden behind the school is open to visitors on weekends.",
    "Our records show that your last payment was received on time.",
)
REAL_CLIPS = ("jfk.wav", "6930-75918-0000.wav", "7902-96591-0000.wav")
VOICES = ("en-us", "en-gb", "en-us+m3", "en-us+f2")


@dataclass(frozen=True)
class LongFile:
    audio: Audio
    reference: str
    sentences: tuple[str, ...]
    """What was said, in order (menu sentences, plain sentences and real clips)."""

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def espeak_available() -> None:
    if shutil.which("espeak-ng") is None:
        ensure_packages("espeak-ng")


@cache
def speak(text: str, voice: str = "en-us", speed: int = 160) -> Audio:
    """`text` spoken by espeak-ng, 16 kHz mono float32."""
    espeak_available()
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return decode_audio_bytes(wav)


@cache
def real_clip(name: str) -> Audio:
    return decode_audio_bytes(clips()[name].path.read_bytes())


def long_file(seed: int, minutes: float, voice: str = "en-us") -> LongFile:
    """About `minutes` of speech: plain sentences with a menu sentence after every second one
    and the real clips spread through, each said once, pauses of 0.4-1.4 s between them."""
    rng = np.random.default_rng(seed)
    plain = [SENTENCES[i] for i in rng.permutation(len(SENTENCES))]
    menu = [MENU[i] for i in rng.permutation(len(MENU))]
    real = list(REAL_CLIPS)
    target = minutes * 60 * SAMPLE_RATE
    parts: list[Audio] = []
    said: list[str] = []
    length = 0
    count = 0
    while length < target and (plain or menu):
        count += 1
        if count % 3 == 0 and menu:
            text = menu.pop()
            audio = speak(text, voice)
        elif count % 7 == 0 and real:
            name = real.pop()
            text, audio = clips()[name].transcript, real_clip(name)
        elif plain:
            text = plain.pop()
            audio = speak(text, voice)
        else:
            continue
        pause = np.zeros(round(rng.uniform(0.4, 1.4) * SAMPLE_RATE), dtype=np.float32)
        parts += [audio, pause]
        said.append(text)
        length += len(audio) + len(pause)
    return LongFile(np.concatenate(parts), " ".join(said), tuple(said))


NUMBER_WORDS = frozenset(
    {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
)


ROMAN = re.compile(r"^(?!I$)[IVX]+$")
"""Roman numerals but a lone 'I', which is the pronoun (espeak's 'nine' is heard as 'I')."""


def menu_number_styles(text: str) -> list[str]:
    """'digit', 'word' or 'roman' for each number said after 'press' in `text` (a word
    recognised there that is no number is a recognition error, not a format: left out)."""
    styles = []
    for match in re.finditer(r"\bpress,?\s+([\w-]+)", text, flags=re.IGNORECASE):
        said = match.group(1)
        if said.isdigit():
            styles.append("digit")
        elif said.lower() in NUMBER_WORDS:
            styles.append("word")
        elif ROMAN.match(said):
            styles.append("roman")
    return styles
