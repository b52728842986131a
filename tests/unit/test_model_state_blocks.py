"""A modelState with calibration or a reference: version 2, hashed, scored calibrated by the Python
scorer (raw margin and contributions unchanged); version 1 cannot carry them."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

import pytest

from domain.gbm.model_state import (
    UnsupportedModel,
    attach_blocks,
    content_hash,
    validate_model_state,
)
from domain.gbm.scorer import load_model

PLATT = {"method": "platt", "fitted_on": 50, "source": "validation", "a": 0.5, "b": 0.25}
ISOTONIC = {"method": "isotonic", "fitted_on": 50, "source": "validation", "x": [0.2, 0.9], "y": [0.0, 1.0]}


def plain_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "schema_version": 1,
        "objective": "binary sigmoid:1",
        "num_class": 1,
        "num_tree_per_iteration": 1,
        "max_feature_idx": 0,
        "feature_names": ["x"],
        "trees": [
            {
                "tree_index": 0,
                "tree_structure": {
                    "split_feature": 0,
                    "threshold": 0.5,
                    "decision_type": "<=",
                    "default_left": True,
                    "missing_type": "None",
                    "internal_value": 0.0,
                    "left_child": {"leaf_value": -1.0},
                    "right_child": {"leaf_value": 2.0},
                },
            }
        ],
        "link": "sigmoid",
        "sigmoid": 1.0,
        "input_features": [{"name": "x", "kind": "numeric"}],
    }
    state["content_hash"] = content_hash(state)
    return state


def reference() -> dict[str, Any]:
    return {
        "rows": 100,
        "fields": [
            {"name": "x", "kind": "numeric", "edges": [0.5], "shares": [0.5, 0.5], "missing_share": 0.0}
        ],
        "score": {"rows": 20, "source": "validation", "edges": [0.5], "shares": [0.4, 0.6]},
    }


def test_attaching_a_block_makes_version_2_and_rehashes() -> None:
    plain = plain_state()
    state = attach_blocks(copy.deepcopy(plain), calibration=PLATT)
    assert state["schema_version"] == 2
    assert state["content_hash"] != plain["content_hash"]
    assert state["content_hash"] == content_hash(state)
    validate_model_state(state)
    assert attach_blocks(copy.deepcopy(plain))["schema_version"] == 1


def test_the_scorer_calibrates_the_score_only() -> None:
    plain = load_model(plain_state())
    platt = load_model(attach_blocks(plain_state(), calibration=PLATT, reference=reference()))
    row = {"x": 1.0}
    before, after = plain.score(row), platt.score(row)
    assert after.raw_margin == before.raw_margin == 2.0
    assert after.contributions == before.contributions
    assert before.score == 1 / (1 + math.exp(-2.0))
    assert after.score == 1 / (1 + math.exp(-(0.5 * 2.0 + 0.25)))
    isotonic = load_model(attach_blocks(plain_state(), calibration=ISOTONIC))
    p = 1 / (1 + math.exp(1.0))  # x <= 0.5 -> margin -1
    assert isotonic.score({"x": 0.0}).score == 0.0 + (p - 0.2) * ((1.0 - 0.0) / (0.9 - 0.2))


def test_version_1_cannot_carry_the_blocks_and_tampering_breaks_the_hash() -> None:
    state = plain_state()
    state["calibration"] = dict(PLATT)
    state["content_hash"] = content_hash(state)
    with pytest.raises(UnsupportedModel, match="schema_version 1 cannot carry calibration"):
        validate_model_state(state)
    signed = attach_blocks(plain_state(), calibration=PLATT)
    signed["calibration"]["a"] = 5.0
    with pytest.raises(UnsupportedModel, match="content_hash mismatch"):
        validate_model_state(signed)


def test_a_reference_for_other_inputs_is_refused() -> None:
    block = reference()
    block["fields"][0]["name"] = "y"
    with pytest.raises(UnsupportedModel, match="reference: field 'x'"):
        attach_blocks(plain_state(), reference=block)


def _as_javascript_writes_it(state: dict[str, Any]) -> dict[str, Any]:
    # JSON.stringify(JSON.parse(text)) writes 1.0 as 1, -0.0 as 0 and 1e17 as 100000000000000000.
    def number(text: str) -> float | int:
        value = float(text)
        return int(value) if value.is_integer() and abs(value) < 1e21 else value

    result: dict[str, Any] = json.loads(json.dumps(state), parse_float=number)
    return result


def test_a_state_that_went_through_javascripts_json_keeps_its_hash() -> None:
    state = attach_blocks(plain_state(), calibration=PLATT, reference=reference())
    state["trees"][0]["tree_structure"]["threshold"] = -0.0
    state["trees"][0]["tree_structure"]["internal_value"] = 1e17  # JavaScript writes its digits
    state = attach_blocks(state)  # rehashed
    round_tripped = _as_javascript_writes_it(state)
    assert round_tripped["sigmoid"] == 1 and isinstance(round_tripped["sigmoid"], int)
    validate_model_state(round_tripped)
    assert content_hash(round_tripped) == state["content_hash"]
    round_tripped["calibration"]["a"] = 0.75
    with pytest.raises(UnsupportedModel, match="content_hash mismatch"):
        validate_model_state(round_tripped)


def test_a_state_hashed_before_numbers_were_hashed_by_value_still_verifies() -> None:
    state = plain_state()
    body = {key: value for key, value in state.items() if key != "content_hash"}
    typed = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    state["content_hash"] = "sha256:" + hashlib.sha256(typed.encode()).hexdigest()
    assert state["content_hash"] != content_hash(state)  # sigmoid 1.0 hashed as "1.0"
    validate_model_state(state)
