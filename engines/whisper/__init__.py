"""faster-whisper (CTranslate2) engine: encoder-decoder, windows batched across requests."""
