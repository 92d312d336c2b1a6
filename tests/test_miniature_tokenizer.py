"""The miniature tokenizer: exact round trips, the chat template, and save/load as a HF tokenizer."""
import random

import pytest
from transformers import AutoTokenizer

from boundary.miniature import task, tokenizer as tk

TOK = tk.build()


@pytest.mark.parametrize("text", [
    "7-6+4=1+4=5\\boxed{5}",  # a trace
    "-22\\boxed{-22}",  # negative numbers
    "2^3*4",  # the teacher's operation
    "",  # nothing
    "  3 + 4 ",  # spaces survive
])
def test_round_trip(text):
    ids = TOK.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)  # one token per character
    assert TOK.decode(ids) == text


def test_round_trip_random_traces():
    rng = random.Random(0)
    for _ in range(300):
        q = task.expression(rng, rng.randint(1, 8), "+-*^")
        r = task.solve(q, rng, "random", 0.2)
        assert TOK.decode(TOK.encode(r, add_special_tokens=False)) == r


def test_chat_template_frames_a_turn():
    ids = tk.prompt_ids(TOK, "3+4")
    assert TOK.convert_ids_to_tokens(ids) == ["<user>", "3", "+", "4", "<assistant>"]
    full, plen = tk.example_ids(TOK, "3+4", "7\\boxed{7}")
    assert full[:plen] == ids and full[-1] == TOK.eos_token_id
    assert TOK.decode(full[plen:], skip_special_tokens=True) == "7\\boxed{7}"


def test_unknown_characters_map_to_unk():
    assert TOK.convert_ids_to_tokens(TOK.encode("a", add_special_tokens=False)) == ["<unk>"]


def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path):
    TOK.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.get_vocab() == TOK.get_vocab()
    assert tk.prompt_ids(again, "9*9") == tk.prompt_ids(TOK, "9*9")
    assert again.decode(again.encode("8-3=5\\boxed{5}", add_special_tokens=False)) == "8-3=5\\boxed{5}"
    assert (again.pad_token_id, again.eos_token_id) == (0, 1)
