"""The refusal of a modelState, shared by the contract's checks and the blocks it carries."""

from __future__ import annotations

from domain.errors import ValidationFailed, field_error


class UnsupportedModel(ValidationFailed):
    """A modelState the reference scorers cannot score faithfully (version, objective, shape, hash)."""


def unsupported(message: str, field: str = "model_state") -> UnsupportedModel:
    """The refusal, naming the modelState key at fault (or the model state as a whole)."""
    return UnsupportedModel(message, [field_error(field, message)])
