"""The chat format: a conversation as one token sequence, and which of its tokens a model learns.

A chat model is still a next-token predictor. What makes it a chat model is a *template*: every
turn is written between control tokens that ordinary text can never produce, so the model can
tell who is speaking and where a turn ends:

    <|system|>You answer in one word.<|end|><|user|>reverse: abc<|end|><|assistant|>cba<|end|>

Four special tokens are added to the byte-level BPE (tinyllm/data/bpe.py) after every existing
id, so the tokenizer's old ids — and a base model trained on them — are unchanged; a model whose
embedding lacks the new rows grows them with `GPT.resize_token_embeddings(tokenizer.vocab_size)`.
Turn contents are encoded as ordinary text (`encode_ordinary`): a user who types "<|end|>"
gets those seven characters, never the control token.

Instruction fine-tuning trains on such sequences, but only the assistant's tokens are targets.
With ids x₁…x_T and a mask m_t (1 on an assistant turn's content and its closing <|end|>, 0 on
system and user turns and on every header), the loss is

    L = − Σ_t m_{t+1} log p(x_{t+1} | x_≤t) / Σ_t m_{t+1}

so the model is taught to answer, not to imitate its users; and because it learns to write
<|end|> after its answer, generation stops there (`eos_token_id=fmt.end_of_turn_id`).
In the (inputs, targets) pairs a training step uses, a masked target is −100, the
`ignore_index` of `cross_entropy` and of `GPT.forward`.

`render_prompt` is the same rendering up to an open assistant header — what a chat sends the
model before it answers (Hugging Face: `apply_chat_template(..., add_generation_prompt=True)`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

SYSTEM, USER, ASSISTANT, END_OF_TURN = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
CHAT_SPECIAL_TOKENS = (SYSTEM, USER, ASSISTANT, END_OF_TURN)
ROLES = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
IGNORE_INDEX = -100


def check_conversation(conversation, where: str = "chat") -> list[dict]:
    """A list of {"role", "content"} turns with known roles and str contents, or a clear error."""
    if isinstance(conversation, (str, bytes)) or not isinstance(conversation, Sequence):
        raise TypeError(
            f"{where}: a conversation is a list of {{'role', 'content'}} dicts, "
            f"got {type(conversation).__name__}"
        )
    turns = []
    for i, turn in enumerate(conversation):
        if not isinstance(turn, dict) or set(turn) - {"role", "content"} or "role" not in turn:
            raise ValueError(
                f"{where}: turn {i} must be a dict with 'role' and 'content', got {turn!r}"
            )
        role, content = turn["role"], turn.get("content", "")
        if role not in ROLES:
            raise ValueError(f"{where}: turn {i} has role {role!r}; roles are {sorted(ROLES)}")
        if not isinstance(content, str):
            raise TypeError(
                f"{where}: turn {i} ({role}) content must be a str, got {type(content).__name__}"
            )
        if role == "system" and i != 0:
            raise ValueError(f"{where}: a system turn may only come first, found one at turn {i}")
        turns.append({"role": role, "content": content})
    return turns


class ChatFormat:
    """The chat template over a ByteLevelBPE. Registers the four chat tokens (idempotent)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        ids = tokenizer.add_special_tokens(CHAT_SPECIAL_TOKENS)
        self.header_ids = {role: ids[k] for k, role in enumerate(("system", "user", "assistant"))}
        self.end_of_turn_id = ids[3]
        self._role_of = {i: r for r, i in self.header_ids.items()}

    @property
    def special_ids(self) -> list[int]:
        return [*self.header_ids.values(), self.end_of_turn_id]

    def render(self, conversation) -> tuple[np.ndarray, np.ndarray]:
        """(ids, loss_mask): int64 (T,) and bool (T,), True on assistant content and its <|end|>."""
        ids: list[int] = []
        mask: list[bool] = []
        for turn in check_conversation(conversation, "ChatFormat.render"):
            body = self.tokenizer.encode_ordinary(turn["content"]) + [self.end_of_turn_id]
            learn = turn["role"] == "assistant"
            ids.append(self.header_ids[turn["role"]])
            mask.append(False)
            ids.extend(body)
            mask.extend([learn] * len(body))
        return np.asarray(ids, dtype=np.int64), np.asarray(mask, dtype=bool)

    def render_prompt(self, conversation) -> np.ndarray:
        """The ids of `conversation` followed by an open assistant header, ready to generate."""
        turns = check_conversation(conversation, "ChatFormat.render_prompt")
        if turns and turns[-1]["role"] == "assistant":
            raise ValueError(
                "ChatFormat.render_prompt: the conversation already ends with an "
                "assistant turn; the prompt is for the next assistant reply"
            )
        ids, _ = self.render(turns)
        return np.concatenate([ids, [self.header_ids["assistant"]]]).astype(np.int64)

    def apply_chat_template(
        self, conversation, add_generation_prompt: bool = False, tokenize: bool = True
    ):
        """Hugging Face's spelling: ids (a list), or the text when `tokenize=False`."""
        ids = (
            self.render_prompt(conversation)
            if add_generation_prompt
            else self.render(conversation)[0]
        )
        ids = ids.tolist()
        return ids if tokenize else self.tokenizer.decode(ids)

    def targets(self, ids: np.ndarray, loss_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Next-token pairs: x = ids[:-1], y = ids[1:] with −100 where the target is not learned."""
        ids, loss_mask = np.asarray(ids), np.asarray(loss_mask, dtype=bool)
        if ids.shape != loss_mask.shape or ids.ndim != 1:
            raise ValueError(
                f"ChatFormat.targets: ids {ids.shape} and loss_mask {loss_mask.shape} "
                "must be equal 1-D shapes"
            )
        y = np.where(loss_mask[1:], ids[1:], IGNORE_INDEX)
        return ids[:-1].astype(np.int64), y.astype(np.int64)

    def render_batch(
        self, conversations: Iterable, block_size: int, truncate: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, y), each (B, block_size) int64: inputs and next-token targets, right-padded.

        Padding inputs are <|end|>; padding targets are −100, so they never reach the loss. A
        conversation longer than block_size + 1 tokens is an error unless `truncate` (then its
        tail is cut, which may cut the answer: the caller chose that).
        """
        if not isinstance(block_size, int) or block_size <= 0:
            raise ValueError(
                f"ChatFormat.render_batch: block_size must be a positive int, got {block_size!r}"
            )
        rows = [self.render(c) for c in conversations]
        if not rows:
            raise ValueError("ChatFormat.render_batch: no conversations")
        x = np.full((len(rows), block_size), self.end_of_turn_id, dtype=np.int64)
        y = np.full((len(rows), block_size), IGNORE_INDEX, dtype=np.int64)
        for b, (ids, mask) in enumerate(rows):
            if len(ids) > block_size + 1:
                if not truncate:
                    raise ValueError(
                        f"ChatFormat.render_batch: conversation {b} is {len(ids)} tokens, more "
                        f"than block_size + 1 = {block_size + 1} (pass truncate=True to cut it)"
                    )
                ids, mask = ids[: block_size + 1], mask[: block_size + 1]
            xi, yi = self.targets(ids, mask)
            x[b, : len(xi)], y[b, : len(yi)] = xi, yi
        return x, y

    def parse(self, ids) -> list[dict]:
        """Ids back to turns. A last turn without <|end|> (a reply cut short) is kept as is;
        tokens before the first header are an error."""
        turns: list[dict] = []
        role, body = None, []

        def close():
            if role is not None:
                turns.append({"role": role, "content": self.tokenizer.decode(body)})

        for i in np.asarray(ids).reshape(-1).tolist():
            if i in self._role_of:
                close()
                role, body = self._role_of[i], []
            elif i == self.end_of_turn_id:
                close()
                role, body = None, []
            elif role is None:
                raise ValueError(f"ChatFormat.parse: token {i} is outside any turn")
            else:
                body.append(i)
        close()
        return turns

    def reply(self, generated) -> str:
        """The text of an assistant reply: generated ids up to the first <|end|>."""
        out = []
        for i in np.asarray(generated).reshape(-1).tolist():
            if i == self.end_of_turn_id:
                break
            if not self.tokenizer.is_special_id(i):
                out.append(i)
        return self.tokenizer.decode(out)
