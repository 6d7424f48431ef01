"""The three transformer families, and the word vectors that came before them.

gpt.py    GPT — decoder-only, causal language modelling (next-token prediction)
hf_gpt2.py  GPT to and from Hugging Face's GPT-2 files (config.json + model.safetensors)
bert.py   BERT-style encoder-only — masked language modelling, sequence classification
t5.py     T5-style encoder-decoder — span corruption, any sequence-to-sequence task
word2vec.py  skip-gram and CBOW with negative sampling (Mikolov et al. 2013)
"""

from tinyllm.models.bert import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
)
from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.models.t5 import T5, T5Config, shift_right
from tinyllm.models.word2vec import Word2Vec
