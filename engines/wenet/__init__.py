"""WeNet CTC engine: reads WeNet's exported TorchScript (or ONNX) model and runs WeNet's
streaming recipe in-process: fbank -> chunked encoder with caches -> CTC prefix beam search
with a hot-word context graph -> endpointing -> optional attention rescoring.

Nothing in this package imports torch, kaldi_native_fbank or onnxruntime at module level; the
engine libraries are imported when a model is loaded (`engines.wenet.testing` excepted: it is
test tooling that builds models).
"""

from engines.wenet.backend import WenetBackend, WenetStream

__all__ = ["WenetBackend", "WenetStream"]
