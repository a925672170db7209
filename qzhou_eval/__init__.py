"""qzhou-eval: reproduce the QZhou-Embedding MTEB / C-MTEB numbers exactly with mteb 2.x."""

from qzhou_eval.api import load_encoder
from qzhou_eval.encoder.embedder import Encoder, EncoderOptions
from qzhou_eval.instructions import InstructionSet, load_benchmark_instructions

__version__ = "0.1.0"

__all__ = ["Encoder", "EncoderOptions", "InstructionSet", "load_benchmark_instructions", "load_encoder", "__version__"]
