"""Data: the byte-level BPE tokenizer, corpora and batch builders.

Read in this order: pretokenize.py (cutting text into word-like chunks), bpe_train.py (learning
merges), bpe_merge.py (replaying them on one chunk), bpe.py (the tokenizer: encode, decode,
special tokens), bpe_file.py (its file), bpe_gpt2_files.py (GPT-2's vocab.json and merges.txt),
corpus.py (the Python standard library as a corpus that every machine has), batches.py (causal
LM, masked LM and span-corruption batches).
"""

from tinyllm.data.batches import (
    get_batch,
    get_mlm_batch,
    get_span_corruption_batch,
    make_mlm_batch,
    mask_tokens,
    random_spans_noise_mask,
    span_corrupt,
    span_corruption_lengths,
)
from tinyllm.data.bpe import (
    CLS,
    ENDOFTEXT,
    MASK,
    PAD,
    SEP,
    ByteLevelBPE,
    sentinel,
    standard_special_tokens,
)
from tinyllm.data.bpe_file import TokenizerFileError
from tinyllm.data.bpe_train import learn_merges, learn_merges_reference
from tinyllm.data.corpus import Corpus, load_corpus, stdlib_text, tokenize_corpus
from tinyllm.data.pretokenize import pre_split, pre_split_reference

BPETokenizer = ByteLevelBPE
