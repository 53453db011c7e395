"""Answer parsing, one home for train (validation accuracy), generate (prediction rows) and score.

The reference's rule (main.py extract_ans): exactly one "The answer is (X)" in the text gives the letter X,
anything else (none, several) gives nothing. Letters map to option indices A → 0, B → 1, …
"""

from __future__ import annotations

import re

# The reference's option letters (args.options): prompts label choices with them, score's random fallback keeps
# a letter among them (scored wrong) and redraws any other.
OPTION_LETTERS = ("A", "B", "C", "D", "E")
ANSWER_PATTERN = re.compile(r"The answer is \(([A-Z])\)")


def extract_answer(text: str | None) -> str | None:
    """The letter X of the single "The answer is (X)" in `text`; None when there is no match or several."""
    if not isinstance(text, str):
        return None
    found = ANSWER_PATTERN.findall(text)
    return found[0] if len(found) == 1 else None


def letter_to_index(letter: str, num_choices: int) -> int | None:
    """Option index for `letter` ("A" → 0); None when the letter is beyond the item's `num_choices` options."""
    if len(letter) != 1 or not "A" <= letter <= "Z":
        return None
    index = ord(letter) - ord("A")
    return index if index < num_choices else None


def answer_index(text: str | None, num_choices: int) -> int | None:
    """Extracted option index of `text`, or None (no single letter, or a letter beyond the choices)."""
    letter = extract_answer(text)
    return letter_to_index(letter, num_choices) if letter else None
