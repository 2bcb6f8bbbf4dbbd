"""The one options definition: bounds, coercion of loose input, caps, style blend weights."""

import pytest

from nst_engine.errors import OptionError
from nst_engine.options import QUALITY_LEVELS, StylizeOptions, option_spec, option_specs


def test_defaults_are_valid_and_within_bounds():
    options = StylizeOptions()
    for spec in option_specs():
        value = getattr(options, spec.name)
        for item in value if isinstance(value, tuple) else (value,):
            if spec.low is not None and isinstance(item, (int, float)):
                assert spec.low <= item <= spec.high, spec.name
            if spec.choices:
                assert item in spec.choices, spec.name


def test_from_mapping_coerces_strings_like_a_cli():
    options = StylizeOptions.from_mapping({"size": "300", "strength": "1.5", "style_weights": "1, 3",
                                           "preserve_colors": "Luminance"})
    assert (options.size, options.strength, options.style_weights, options.preserve_colors) == \
        (300, 1.5, (1.0, 3.0), "luminance")


@pytest.mark.parametrize("values, message", [
    ({"size": 5}, "size must be between 16 and 4096, not 5"),
    ({"size": "big"}, "size must be a whole number"),
    ({"size": 12.5}, "size must be a whole number"),
    ({"iterations": True}, "iterations must be a whole number"),
    ({"strength": float("nan")}, "strength must be a number, not NaN"),
    ({"preserve_colors": "sepia"}, "preserve_colors must be one of none, luminance, histogram"),
    ({"colour": 1}, "unknown option(s): colour"),
    ({"content_layer": "relu9_9"}, "unknown VGG19 layer 'relu9_9'"),
    ({"style_layers": "relu1_1,relu2_1", "style_layer_weights": "1"}, "style_layer_weights has 1 values"),
])
def test_bad_values_get_clear_messages(values, message):
    with pytest.raises(OptionError) as error:
        StylizeOptions.from_mapping(values)
    assert message in str(error.value)


def test_clamped_applies_admin_caps_only_downwards():
    options = StylizeOptions(size=2000, iterations=50)
    capped = options.clamped(max_size=1024, max_iterations=40)
    assert (capped.size, capped.iterations) == (1024, 40)
    assert options.clamped(max_size=4096).size == 2000


def test_style_blend_weights_normalise_and_check_count():
    assert StylizeOptions().normalized_style_weights(4) == (0.25,) * 4
    assert StylizeOptions(style_weights=(1.0, 3.0)).normalized_style_weights(2) == (0.25, 0.75)
    with pytest.raises(OptionError, match="2 style weight"):
        StylizeOptions(style_weights=(1.0, 3.0)).normalized_style_weights(3)
    with pytest.raises(OptionError, match="not all be zero"):
        StylizeOptions(style_weights=(0.0, 0.0)).normalized_style_weights(2)


def test_user_specs_are_the_ones_front_ends_expose():
    names = [spec.name for spec in option_specs(user_only=True)]
    assert {"size", "iterations", "strength", "preserve_colors", "seed"} <= set(names)
    assert "content_layer" not in names
    assert option_spec("size").type is int and option_spec("strength").type is float


def test_quality_levels_fit_the_bounds():
    size, iterations = option_spec("size"), option_spec("iterations")
    for level in QUALITY_LEVELS.values():
        assert size.low <= level.size <= size.high
        assert iterations.low <= level.iterations <= iterations.high
