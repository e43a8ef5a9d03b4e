"""Realtime streaming transcription: one session engine behind two WebSocket protocols.

decode -> resample -> VAD -> state machine -> ring buffer -> partial policy -> post-processing
-> events. The native protocol (`protocol.py`) and OpenAI Realtime transcription mode
(`openai_protocol.py`) only differ in how commands are parsed and events are rendered: one
`WireProtocol` each (`wire.py`).
"""
