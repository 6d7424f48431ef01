"""tinyllm.nn — layers and containers with PyTorch's names (torch.nn).

module.py       Module, Parameter, ModuleList, ModuleDict, Sequential
layers.py       Linear, Embedding, LayerNorm, Dropout, GELU, ReLU, Tanh, Identity
positional.py   sinusoidal (fixed) and learned positional encodings
attention.py    MultiHeadAttention (self / causal / cross), KVCache
transformer.py  FeedForward, EncoderBlock, DecoderBlock, Encoder, Decoder
functional.py   the functional ops (tinyllm.nn.functional ≈ torch.nn.functional)
"""

from tinyllm.nn import functional
from tinyllm.nn.attention import KVCache, MultiHeadAttention
from tinyllm.nn.layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Tanh
from tinyllm.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from tinyllm.nn.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from tinyllm.nn.transformer import Decoder, DecoderBlock, Encoder, EncoderBlock, FeedForward
