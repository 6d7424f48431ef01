"""tinyllm.nn — layers and containers with PyTorch's names (torch.nn).

module.py       Module, Parameter: the tree of parameters, buffers and children
containers.py   ModuleList, ModuleDict, Sequential
layers.py       Linear, Embedding, LayerNorm, Dropout, Identity, activation modules
loss.py         MSELoss, L1Loss, CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss (+ their functions)
init.py         initialization: normal_, xavier_*, kaiming_*, trunc_normal_, calculate_gain
utils.py        clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters
positional.py   sinusoidal (fixed) and learned positional encodings
attention.py    MultiHeadAttention (self / causal / cross), KVCache
lora.py         LoRALinear, apply_lora, merge_lora: low-rank adapters on frozen Linears
rnn.py          RNN, LSTM, GRU and their cells: the recurrence before attention
transformer.py  FeedForward, EncoderBlock, DecoderBlock, Encoder, Decoder
functional.py   the functional ops (tinyllm.nn.functional ≈ torch.nn.functional)
"""

from tinyllm.nn.module import Module, Parameter  # isort: skip  (first: the containers need it)
from tinyllm.nn import functional, init, utils
from tinyllm.nn.attention import KVCache, MultiHeadAttention
from tinyllm.nn.containers import ModuleDict, ModuleList, Sequential
from tinyllm.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from tinyllm.nn.lora import LoRALinear, apply_lora, lora_state_dict, merge_lora
from tinyllm.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from tinyllm.nn.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from tinyllm.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from tinyllm.nn.transformer import Decoder, DecoderBlock, Encoder, EncoderBlock, FeedForward
