"""Parameter counts: the 12H² formulas against published model sizes and against a model."""

from types import SimpleNamespace

import numpy as np
import pytest

from tinyllm.accounting import count_parameters, gpt_param_formula, layer_params, param_table
from tinyllm.engine import Tensor


def config(**kw):
    base = dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, bias=True)
    return SimpleNamespace(**{**base, **kw})


@pytest.mark.parametrize(
    "n_layer,n_embd,published",
    [
        (12, 768, 124_439_808),  # gpt2
        (24, 1024, 354_823_168),  # gpt2-medium
        (36, 1280, 774_030_080),  # gpt2-large
        (48, 1600, 1_557_611_200),  # gpt2-xl
    ],
)
def test_formula_matches_published_gpt2_sizes(n_layer, n_embd, published):
    """The parameter counts Hugging Face reports for the four GPT-2 checkpoints."""
    count = gpt_param_formula(config(n_layer=n_layer, n_embd=n_embd))
    assert count.total == published
    assert count.lm_head == 0 and count.tied


def test_nanogpt_non_embedding_count_for_gpt2():
    """nanoGPT prints "number of parameters: 123.65M" for GPT-2 small (total minus wpe)."""
    assert round(gpt_param_formula(config()).non_embedding / 1e6, 2) == 123.65


def test_layer_formula_pieces():
    h = 10
    assert layer_params(h, bias=True) == 12 * h * h + 9 * h + 4 * h  # biases 9H + norms 4H
    assert layer_params(h, bias=False) == 12 * h * h + 2 * h  # norm weights only
    c = gpt_param_formula(config(vocab_size=7, block_size=5, n_layer=3, n_embd=h, bias=False))
    assert c.attention == 3 * 4 * h * h and c.mlp == 3 * 8 * h * h
    assert c.norms == (2 * 3 + 1) * h
    assert c.embeddings == (7 + 5) * h
    assert c.matmul == 3 * 12 * h * h + 7 * h


def test_formula_rejects_bad_config():
    with pytest.raises(ValueError, match="n_embd"):
        gpt_param_formula(config(n_embd=0))
    with pytest.raises(ValueError, match="vocab_size"):
        gpt_param_formula(SimpleNamespace(block_size=4, n_layer=1, n_embd=4))


class FakeGPT:
    """Stands in for a GPT module: nanoGPT names, real arrays, lm_head tied to wte."""

    def __init__(self, cfg, list_tied_twice=True, untied=False, extra=None, seed=0):
        rng = np.random.default_rng(seed)
        h, v = cfg.n_embd, cfg.vocab_size

        def p(*shape):
            return Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)

        b = cfg.bias
        self.params = [
            ("transformer.wte.weight", p(v, h)),
            ("transformer.wpe.weight", p(cfg.block_size, h)),
        ]
        for i in range(cfg.n_layer):
            pre = f"transformer.h.{i}."
            self.params += [(pre + "ln_1.weight", p(h))] + (
                [(pre + "ln_1.bias", p(h))] if b else []
            )
            self.params += [
                (pre + "attn.c_attn.weight", p(3 * h, h)),
                (pre + "attn.c_proj.weight", p(h, h)),
            ]
            if b:
                self.params += [
                    (pre + "attn.c_attn.bias", p(3 * h)),
                    (pre + "attn.c_proj.bias", p(h)),
                ]
            self.params += [(pre + "ln_2.weight", p(h))] + (
                [(pre + "ln_2.bias", p(h))] if b else []
            )
            self.params += [
                (pre + "mlp.c_fc.weight", p(4 * h, h)),
                (pre + "mlp.c_proj.weight", p(h, 4 * h)),
            ]
            if b:
                self.params += [(pre + "mlp.c_fc.bias", p(4 * h)), (pre + "mlp.c_proj.bias", p(h))]
        self.params += [("transformer.ln_f.weight", p(h))] + (
            [("transformer.ln_f.bias", p(h))] if b else []
        )
        if untied:
            self.params.append(("lm_head.weight", p(v, h)))
        elif list_tied_twice:  # same Parameter object under a second name
            self.params.append(("lm_head.weight", self.params[0][1]))
        if extra:
            self.params.append(extra)

    def named_parameters(self):
        return iter(self.params)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("list_tied_twice", [True, False])
def test_count_parameters_matches_formula(bias, list_tied_twice):
    cfg = config(vocab_size=23, block_size=9, n_layer=2, n_embd=8, bias=bias)
    counted = count_parameters(FakeGPT(cfg, list_tied_twice=list_tied_twice))
    formula = gpt_param_formula(cfg)
    assert counted.as_dict() == formula.as_dict()
    assert counted.tied
    assert (counted.attention_weights, counted.mlp_weights) == (
        formula.attention_weights,
        formula.mlp_weights,
    )
    assert counted.matmul == formula.matmul
    # and by brute force: every distinct array once
    model = FakeGPT(cfg, list_tied_twice=list_tied_twice)
    distinct = {id(t): t.data.size for _, t in model.named_parameters()}
    assert counted.total == sum(distinct.values())
    assert "differs" not in param_table(counted, formula)


def test_tie_through_a_shared_array_and_an_untied_head():
    cfg = config(vocab_size=13, block_size=4, n_layer=1, n_embd=4)
    model = FakeGPT(cfg, list_tied_twice=False)
    wte = model.params[0][1]
    model.params.append(("lm_head.weight", Tensor(wte.data)))  # new Tensor, same array
    assert count_parameters(model).lm_head == 0
    untied = count_parameters(FakeGPT(cfg, untied=True))
    assert untied.lm_head == 13 * 4 and not untied.tied
    assert untied.total == gpt_param_formula(cfg).total + 13 * 4
    assert untied.matmul == gpt_param_formula(cfg).matmul  # lm_head replaces wte in matmuls


def test_unknown_names_are_counted_as_other_not_dropped():
    cfg = config(vocab_size=13, block_size=4, n_layer=1, n_embd=4)
    counted = count_parameters(FakeGPT(cfg, extra=("rotary.freqs", Tensor(np.zeros(6)))))
    assert counted.other == 6
    assert counted.names["other"] == ["rotary.freqs"]
    assert "differs" in param_table(counted, gpt_param_formula(cfg))
    with pytest.raises(TypeError, match="named_parameters"):
        count_parameters(object())


@pytest.mark.parametrize("bias", [True, False])
def test_count_parameters_of_tinyllm_gpt(bias):
    """The real model: nanoGPT names, lm_head tied to wte by sharing one Parameter."""
    from tinyllm.models import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=29, block_size=12, n_layer=2, n_head=2, n_embd=8, bias=bias)
    model = GPT(cfg)
    counted, formula = count_parameters(model), gpt_param_formula(cfg)
    assert counted.as_dict() == formula.as_dict(), param_table(counted, formula)
    assert counted.matmul == formula.matmul
    assert counted.total == model.get_num_params(non_embedding=False)
    assert counted.non_embedding == model.get_num_params()


# ---- BERT and T5: the real models, per component, against formulas written out here --------

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tinyllm.accounting import bert_param_formula, t5_param_formula  # noqa: E402

shapes = st.fixed_dictionaries(
    dict(
        vocab_size=st.integers(5, 40),
        block_size=st.integers(2, 20),
        n_layer=st.integers(1, 3),
        n_head=st.integers(1, 3),
        head_dim=st.integers(1, 4),
        bias=st.booleans(),
    )
)


def expected_encoder_layers(n, h, bias):
    """n encoder (or GPT) blocks, written from the architecture: Q, K, V, out projections
    H×H each (+H biases), MLP H→4H→H (+4H, +H), two LayerNorms (weight, and bias if any)."""
    b = 1 if bias else 0
    ln = h + b * h
    return dict(
        attention=n * (4 * h * h + b * 4 * h),
        mlp=n * (h * 4 * h + 4 * h * h + b * 5 * h),
        norms=n * 2 * ln,
    )


def shape(v, t, n, heads, hd, bias):
    return dict(vocab_size=v, block_size=t, n_layer=n, n_head=heads, head_dim=hd, bias=bias)


@settings(max_examples=12, deadline=None)
@given(
    shape=shapes,
    type_vocab=st.integers(1, 3),
    num_labels=st.integers(1, 5),
    head=st.sampled_from(["mlm", "classification", None]),
)
@example(shape=shape(31, 9, 2, 2, 3, True), type_vocab=2, num_labels=3, head="mlm")
@example(shape=shape(17, 5, 3, 3, 2, False), type_vocab=1, num_labels=4, head="classification")
@example(shape=shape(8, 4, 1, 1, 4, True), type_vocab=3, num_labels=2, head=None)
def test_bert_components_from_the_model_equal_the_formula(shape, type_vocab, num_labels, head):
    from tinyllm.models.bert import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        BertModel,
    )

    h = shape["n_head"] * shape["head_dim"]
    v, t, n, bias = shape["vocab_size"], shape["block_size"], shape["n_layer"], shape["bias"]
    cfg = BertConfig(
        vocab_size=v,
        block_size=t,
        n_layer=n,
        n_head=shape["n_head"],
        n_embd=h,
        bias=bias,
        type_vocab_size=type_vocab,
        num_labels=num_labels,
        dropout=0.0,
    )
    cls = {
        "mlm": BertForMaskedLM,
        "classification": BertForSequenceClassification,
        None: BertModel,
    }[head]
    model = cls(cfg)
    counted = count_parameters(model)
    assert counted.total == model.num_parameters()  # nothing dropped, nothing twice
    assert counted.other == 0, counted.names.get("other")
    want = expected_encoder_layers(n, h, bias)
    want["norms"] += h + (h if bias else 0)  # encoder.ln_f
    want["embeddings"] = (v + t + type_vocab) * h  # tokens, positions, segments
    # heads: MLM = dense H×H + H, LayerNorm 2H, V output biases (scores via the tied wte);
    # classification = pooler H×H + H, classifier K×H + K
    want["heads"] = {
        "mlm": h * h + h + 2 * h + v,
        "classification": h * h + h + num_labels * h + num_labels,
        None: 0,
    }[head]
    want["other"] = 0
    assert {k: getattr(counted, k) for k in want} == want
    assert counted.tied == (head == "mlm") and counted.lm_head == 0
    assert counted.cross_attention == 0
    formula = bert_param_formula(cfg, head)
    assert counted.as_dict() == formula.as_dict(), param_table(counted, formula)
    assert (counted.attention_weights, counted.mlp_weights, counted.head_weights, counted.tied) == (
        formula.attention_weights,
        formula.mlp_weights,
        formula.head_weights,
        formula.tied,
    )
    assert (
        counted.matmul
        == formula.matmul
        == n * 12 * h * h
        + {"mlm": h * h + v * h, "classification": h * h + num_labels * h, None: 0}[head]
    )


@settings(max_examples=12, deadline=None)
@given(shape=shapes, n_decoder_layer=st.integers(1, 3))
@example(shape=shape(29, 11, 2, 2, 3, True), n_decoder_layer=1)
@example(shape=shape(13, 6, 1, 3, 2, False), n_decoder_layer=3)
def test_t5_components_from_the_model_equal_the_formula(shape, n_decoder_layer):
    from tinyllm.models.t5 import T5, T5Config

    h = shape["n_head"] * shape["head_dim"]
    v, n, bias = shape["vocab_size"], shape["n_layer"], shape["bias"]
    cfg = T5Config(
        vocab_size=v,
        block_size=shape["block_size"],
        n_layer=n,
        n_decoder_layer=n_decoder_layer,
        n_head=shape["n_head"],
        n_embd=h,
        bias=bias,
        dropout=0.0,
    )
    model = T5(cfg)
    counted = count_parameters(model)
    assert counted.total == model.num_parameters()
    assert counted.other == 0, counted.names.get("other")
    enc = expected_encoder_layers(n, h, bias)
    d, b, ln = n_decoder_layer, (1 if bias else 0), h + (h if bias else 0)
    # a decoder layer: self- and cross-attention (16H² with the MLP's 8H²), three LayerNorms
    cross = d * (4 * h * h + b * 4 * h)
    want = dict(
        embeddings=v * h,  # one shared table, sinusoidal positions
        attention=enc["attention"] + 2 * cross,
        cross_attention=cross,
        mlp=enc["mlp"] + d * (8 * h * h + b * 5 * h),
        norms=enc["norms"] + d * 3 * ln + 2 * ln,  # + each stack's ln_f
        heads=0,
        other=0,
    )
    assert {k: getattr(counted, k) for k in want} == want
    assert d * (16 * h * h) == counted.attention_weights + counted.mlp_weights - n * 12 * h * h
    assert counted.tied and counted.position_embeddings == 0
    formula = t5_param_formula(cfg)
    assert counted.as_dict() == formula.as_dict(), param_table(counted, formula)
    assert counted.cross_attention == formula.cross_attention
    assert counted.matmul == formula.matmul == (12 * n + 16 * d) * h * h + v * h
    assert "differs" not in param_table(counted, formula)


def test_bert_and_t5_formulas_match_published_sizes():
    """Hugging Face's counts: bert-base-uncased as BertForMaskedLM 109,514,298 and as
    BertForSequenceClassification (2 labels) 109,483,778 — tinyllm's pre-LN BERT moves the
    embedding LayerNorm to the end (ln_f), same size. t5-small 60,506,624: no biases,
    RMSNorm (a weight only, like LayerNorm without bias), plus 32 relative-position buckets ×
    8 heads in each stack's first layer, which tinyllm replaces by fixed sinusoids."""
    from tinyllm.models.bert import BertConfig
    from tinyllm.models.t5 import T5Config

    assert bert_param_formula(BertConfig(), "mlm").total == 109_514_298
    assert bert_param_formula(BertConfig(num_labels=2), "classification").total == 109_483_778
    assert t5_param_formula(T5Config(bias=False)).total + 2 * 32 * 8 == 60_506_624


def test_decoder_layer_formula_and_bad_bert_head():
    h = 6
    assert layer_params(h, cross_attention=True) == 16 * h * h + 8 * h + 5 * h + 6 * h
    assert layer_params(h, bias=False, cross_attention=True) == 16 * h * h + 3 * h
    with pytest.raises(ValueError, match="head"):
        bert_param_formula(SimpleNamespace(), "nsp")
    with pytest.raises(ValueError, match="n_decoder_layer"):
        t5_param_formula(SimpleNamespace(vocab_size=5, n_layer=1, n_embd=4))
