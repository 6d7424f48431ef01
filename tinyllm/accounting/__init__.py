"""Accounting: what training costs, by formula and by counting what runs.

    params.py    parameters: 12H² per layer (+13H with biases and norms), 16H² for a decoder
                 layer with cross-attention, embeddings and heads apart (GPT, BERT, T5);
                 `count_parameters(model)` groups a model's own parameters the same way
    flops.py     FLOP formulas: the notes' 2L²H + 12LH² multiply-adds per layer, 6N per
                 token, Kaplan's and PaLM's attention terms, C = 6ND, petaflop/s-days
    counter.py   `FlopCounter`: adds up the FLOPs every executed op declares (its `flops`),
                 forward and backward apart, beside the formulas
    mfu.py       model FLOPs utilization and a BLAS matmul peak benchmark
    memory.py    ZeRO model-state memory per device (stages 0–3) and communication volume
    scaling.py   compute-optimal N and D (Chinchilla): the 20-tokens rule and the fitted law

Everything here is arithmetic on shapes and counts; nothing allocates a model.
"""

from tinyllm.accounting.counter import (
    FlopCounter,
    FlopTally,
    compare_with_formulas,
    comparison_table,
)
from tinyllm.accounting.flops import (
    PETAFLOP_S_DAY,
    kaplan_flops_per_token,
    layer_forward_flops,
    notes_layer_macs,
    palm_flops_per_token,
    palm_flops_per_token_for,
    pf_days,
    training_flops,
)
from tinyllm.accounting.memory import (
    FP32_ADAM,
    GB,
    MIXED_PRECISION_ADAM,
    ZERO_TABLE1,
    ModelStateMemory,
    Precision,
    notes_rule_of_thumb,
    zero_communication_elements,
    zero_memory,
    zero_table,
)
from tinyllm.accounting.mfu import measure_matmul_peak, mfu, model_flops_per_second
from tinyllm.accounting.params import (
    ParamCount,
    bert_param_formula,
    blocks_formula,
    count_parameters,
    gpt_param_formula,
    layer_params,
    param_table,
    t5_param_formula,
)
from tinyllm.accounting.scaling import (
    CHINCHILLA,
    CHINCHILLA_TABLE3,
    ChinchillaLaw,
    PowerLaw,
    compute_optimal_by_rule,
    fit_power_law,
    scaling_rows,
)
