"""The model registry: every model a map can train, by name."""

from __future__ import annotations

from ..errors import unknown_name
from .base import Model, Problem
from .formula import Formula
from .mlp import MLP
from .network import Network
from .relu_neuron import ReluNeuron
from .scalar import DoubleWell, Quadratic
from .softmax_mlp import SoftmaxMLP
from .uv import UV

MODELS: dict[str, Model] = {
    m.name: m for m in (Quadratic(), DoubleWell(), UV(), ReluNeuron(), MLP(), SoftmaxMLP(), Formula(), Network())
}


def get_model(name: str) -> Model:
    """The model called ``name``; a SpecError lists the valid names otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise unknown_name(name, list(MODELS), "model") from None


__all__ = ["MODELS", "Model", "Problem", "get_model"]
