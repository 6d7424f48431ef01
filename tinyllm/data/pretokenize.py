"""Pre-splitting: cut text into word-like chunks before byte-pair merging.

BPE learns merges from adjacent pairs. Left alone on raw text it would happily merge across word
boundaries ("e t" in "the token") and learn one token per punctuation-and-word combination
("dog.", "dog!", "dog?"), wasting the vocabulary. GPT-2 (Radford et al. 2019, section 2.2)
therefore first splits text with a regular expression and lets merges act only *inside* a chunk:

    's|'t|'re|'ve|'m|'ll|'d | ?\\p{L}+ | ?\\p{N}+ | ?[^\\s\\p{L}\\p{N}]+ | \\s+(?!\\S) | \\s+

read left to right as "the first alternative that matches at this position wins":

1. an English contraction suffix (lower case only, as in GPT-2);
2. a run of letters, 3. a run of digits/numerals, 4. a run of anything else (punctuation,
   symbols, emoji, combining marks) -- each optionally preceded by ONE space, so a word carries
   its leading space (" world") and "hello" and " hello" are different tokens;
5. a run of whitespace that is not followed by a non-space -- which, by backtracking, means a
   whitespace run before a word gives up its last character, so that the word can take it as its
   leading space ("a   b" -> "a", "  ", " b");
6. any remaining whitespace (a single "\\n" before a word, for example).

Concatenating the chunks always gives back the text: the split loses nothing.

Python's `re` has no `\\p{L}` / `\\p{N}` (the `regex` package does; tinyllm uses the standard
library only). We define the character classes from the Unicode database that ships with
Python:

    letter   L  <=>  unicodedata.category(c) starts with "L"   (the same as str.isalpha())
    numeral  N  <=>  unicodedata.category(c) starts with "N"   (Nd, Nl, No: "7", "Ⅻ", "²")
    space    S  <=>  str.isspace()                              (what `re`'s \\s matches)
    other    P  <=>  none of these (punctuation, symbols, marks, controls, surrogates)

Two implementations of the same rule follow, the readable one first:

* `pre_split_reference` -- a hand-written scanner that walks the string and applies the six
  alternatives literally. Plain Python, one character at a time: slow, but every step visible.
* `pre_split` -- the GPT-2 pattern for `re`, with \\p{L} and \\p{N} spelled out as explicit
  code-point ranges computed once from the predicates above. It runs in C and is what the
  tokenizer uses. The tests assert the two agree on arbitrary Unicode text.

Differences from GPT-2's own regex (which used the `regex` module): the Unicode version is
whatever Python's `unicodedata` carries, and whitespace is `str.isspace()`, which also counts the
ASCII separators U+001C..U+001F. Neither matters for ordinary text.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")  # after an apostrophe, in GPT-2's order


def char_class(c: str) -> str:
    """The pre-split class of one character: "L" letter, "N" numeral, "S" space, "P" other."""
    if _is_letter(c):
        return "L"
    if _is_numeral(c):
        return "N"
    if c.isspace():
        return "S"
    return "P"


def _match_end(text: str, i: int) -> int:
    """Where the chunk that starts at text[i] ends, by GPT-2's alternatives in order."""
    n = len(text)
    # 1. contraction: an apostrophe followed by one of the suffixes
    if text[i] == "'":
        for suffix in CONTRACTIONS:
            if text.startswith(suffix, i + 1):
                return i + 1 + len(suffix)
    # 2-4. an optional single space, then a run of letters, of numerals or of "other"
    start = i + 1 if text[i] == " " and i + 1 < n else i
    cls = char_class(text[start])
    if cls != "S":
        j = start
        while j < n and char_class(text[j]) == cls:
            j += 1
        return j
    # 5-6. a whitespace run; before a non-space it leaves its last character to the next chunk
    j = i
    while j < n and text[j].isspace():
        j += 1
    if j == n or j - i == 1:  # at the end of text, or a single space char: take it all (6.)
        return j
    return j - 1  # \s+(?!\S) backtracks one character (5.)


def pre_split_reference(text: str) -> list[str]:
    """Split `text` into GPT-2 chunks with a character-by-character scanner (the readable rule)."""
    chunks, i = [], 0
    while i < len(text):
        j = _match_end(text, i)
        chunks.append(text[i:j])
        i = j
    return chunks


def _ranges(predicate, lo: int, hi: int) -> str:
    """Code points in [lo, hi] satisfying `predicate`, as a `re` class body "a-zà-ö..."."""
    parts, start = [], None
    for cp in range(lo, hi + 2):
        inside = cp <= hi and predicate(chr(cp))
        if inside and start is None:
            start = cp
        elif not inside and start is not None:
            end = cp - 1
            parts.append(
                re.escape(chr(start))
                if start == end
                else f"{re.escape(chr(start))}-{re.escape(chr(end))}"
            )
            start = None
    return "".join(parts)


def _is_letter(c: str) -> bool:
    return unicodedata.category(c)[0] == "L"


def _is_numeral(c: str) -> bool:
    return unicodedata.category(c)[0] == "N"


@lru_cache(maxsize=1)
def gpt2_pattern() -> re.Pattern:
    """GPT-2's split pattern for Python's `re`, \\p{L} and \\p{N} expanded into code-point ranges.

    A speed detail shapes the pattern. `re` stores a character class whose members all lie in the
    Basic Multilingual Plane (code points < 0x10000) as a bitmap: one lookup per character. A
    class with even one code point above that is stored as a list of ranges searched one by one
    (~300 ranges for letters), several times slower on ordinary text
    (docs/04-tokenization-and-embeddings.md has the measurement). So each class is written as
    its BMP bitmap, plus -- only for a character that is astral, tested first by one range
    check -- the short list of astral ranges:

        letters  = (?: [BMP letters]+ | (?=[astral]) [astral letters] )+

    Built once per process (one pass over all code points; benchmarks/tokenizer.py prints how
    long it takes).
    """
    bmp, top = 0xFFFF, sys.maxunicode
    astral = rf"\U00010000-\U{top:08X}"
    letters_bmp, letters_astral = _ranges(_is_letter, 0, bmp), _ranges(_is_letter, bmp + 1, top)
    nums_bmp, nums_astral = _ranges(_is_numeral, 0, bmp), _ranges(_is_numeral, bmp + 1, top)
    letters = rf"(?:[{letters_bmp}]+|(?=[{astral}])[{letters_astral}])+"
    numerals = rf"(?:[{nums_bmp}]+|(?=[{astral}])[{nums_astral}])+"
    others = (
        rf"(?:[^\s{letters_bmp}{nums_bmp}{astral}]+"
        rf"|(?=[{astral}])[^{letters_astral}{nums_astral}])+"
    )
    contractions = "|".join("'" + s for s in CONTRACTIONS)
    return re.compile(rf"{contractions}| ?{letters}| ?{numerals}| ?{others}|\s+(?!\S)|\s+")


def pre_split(text: str) -> list[str]:
    """Split `text` into GPT-2 chunks (fast: one `re.findall`). Same result as the reference."""
    return gpt2_pattern().findall(text)
