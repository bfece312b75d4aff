"""Each registry knows exactly the names the config schema accepts, so they cannot drift."""

import typing

import pytest
from pydantic import TypeAdapter

from nnctl import config
from nnctl.nn.activations import ACTIVATIONS
from nnctl.nn.init import DENSE_INITIALIZERS, INITIALIZERS
from nnctl.nn.layers import LAYERS
from nnctl.nn.losses import LOSSES
from nnctl.nn.optim import OPTIMIZERS
from nnctl.nn.schedules import SCHEDULES


def union_tags(annotated) -> set[str]:
    """The `type` tags of a discriminated union such as config.LayerSpec."""
    union = typing.get_args(annotated)[0]
    return {typing.get_args(member.model_fields["type"].annotation)[0]
            for member in typing.get_args(union)}


def literal_values(literal) -> set[str]:
    return set(typing.get_args(literal))


@pytest.mark.parametrize("registry, schema", [
    (LAYERS, config.LayerSpec),
    (OPTIMIZERS, config.OptimizerSpec),
    (SCHEDULES, config.ScheduleSpec),
])
def test_tagged_unions_match_registries(registry, schema):
    assert set(registry) == union_tags(schema)


def test_names_match_registries():
    assert set(LOSSES) == literal_values(config.LossName)
    assert set(ACTIVATIONS) == literal_values(config.Activation)
    assert literal_values(config.RecurrentActivation) == set(ACTIVATIONS) - {"softmax"}
    assert set(DENSE_INITIALIZERS) == literal_values(config.DenseInit)
    assert set(INITIALIZERS) == literal_values(config.RecurrentInit)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_fields_are_constructor_arguments(name):
    """Every field the config accepts for an optimizer is an argument of its class, with the
    same default, so a config builds the optimizer it describes."""
    import inspect

    spec = TypeAdapter(config.OptimizerSpec).validate_python({"type": name})
    fields = spec.model_dump(exclude={"type"})
    parameters = inspect.signature(OPTIMIZERS[name].__init__).parameters
    assert set(fields) == set(parameters) - {"self", "params"}
    for key, value in fields.items():
        assert parameters[key].default == value, key


@pytest.mark.parametrize("name, spec", [
    ("dense", {"type": "dense", "units": 3}),
    ("dropout", {"type": "dropout", "rate": 0.5}),
    ("rnn", {"type": "rnn", "units": 3}),
])
def test_layer_fields_are_constructor_arguments(name, spec):
    import inspect

    fields = TypeAdapter(config.LayerSpec).validate_python(spec).model_dump(exclude={"type"})
    parameters = inspect.signature(LAYERS[name].__init__).parameters
    assert set(fields) == set(parameters) - {"self"}
