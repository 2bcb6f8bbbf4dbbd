"""Weights: resolution order, torchvision formats, the verified cache, and the one clear error."""

import json

import pytest
import torch

from nst_engine.errors import WeightsError
from nst_engine.layers import CACHE_LAST_INDEX
from nst_engine.network import features_state
from nst_engine.weights import (CACHE_FILE, MANIFEST_FILE, install_weights, load_weights, resolve_weights,
                                verify_cache)


def test_no_weights_names_both_remedies(isolated_cache):
    with pytest.raises(WeightsError) as error:
        resolve_weights()
    assert "nst-bot fetch-assets" in str(error.value) and "NST_WEIGHTS" in str(error.value)


def test_resolution_order(isolated_cache, tmp_path, vgg_weights, monkeypatch):
    env_file, config_file = tmp_path / "env.pth", tmp_path / "config.pth"
    for path in (env_file, config_file):
        path.write_bytes(vgg_weights.read_bytes())
    install_weights(vgg_weights, origin="test")
    assert resolve_weights() == (isolated_cache / CACHE_FILE, True)
    assert resolve_weights(configured=config_file) == (config_file, False)
    monkeypatch.setenv("NST_WEIGHTS", str(env_file))
    assert resolve_weights(configured=config_file) == (env_file, False)
    assert resolve_weights(explicit=vgg_weights, configured=config_file) == (vgg_weights, False)
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_weights(explicit=tmp_path / "missing.pth")


def test_cache_keeps_features_to_conv5_1_and_verifies_checksum(isolated_cache, vgg_weights):
    target = install_weights(vgg_weights, origin="test")
    state = torch.load(target, weights_only=True)
    indices = {int(key.split(".")[1]) for key in state}
    assert max(indices) == CACHE_LAST_INDEX and all(key.startswith("features.") for key in state)
    manifest = json.loads((isolated_cache / MANIFEST_FILE).read_text())
    assert manifest["sha256"] == verify_cache() and manifest["origin"] == "test"
    assert load_weights().keys() == indices  # every kept conv loads

    # Flip one byte inside the cached file: the next load must refuse it.
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt \\(checksum mismatch\\).*fetch-assets"):
        load_weights()


def test_full_model_and_features_only_state_dicts(tmp_path):
    from torchvision.models import vgg19

    torch.manual_seed(3)
    model = vgg19(weights=None)
    full = features_state(model.state_dict())
    features_only = features_state(model.features.state_dict())
    assert full.keys() == features_only.keys()
    assert all(torch.equal(full[k][0], features_only[k][0]) for k in full)


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        load_weights(garbage)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(WeightsError, match="not a torchvision VGG19"):
        load_weights(other)
    wrong_shape = tmp_path / "vgg16ish.pth"
    torch.save({"features.0.weight": torch.zeros(32, 3, 3, 3), "features.0.bias": torch.zeros(32)}, wrong_shape)
    with pytest.raises(WeightsError, match="layer 0 has shape"):
        load_weights(wrong_shape)


def test_weights_only_loading_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pth"
    torch.save({"features.0.weight": Payload()}, evil)
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        load_weights(evil)


def test_the_torch_free_check_before_run_connects(tmp_path, vgg_weights):
    """``check_weights_file`` accepts both torch formats of a VGG19 and refuses what torch could not load or what
    is not a VGG19, without importing torch itself."""
    from nst_engine.weights import check_weights_file

    state = torch.load(vgg_weights, weights_only=True)
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    for good in (vgg_weights, legacy):
        check_weights_file(good)
        features_state(torch.load(good, weights_only=True))  # and torch agrees
    data = vgg_weights.read_bytes()
    cases = {"text.pth": (b"not weights", "neither a zip archive nor a pickle"),
             "cut.pth": (data[: len(data) // 2], "neither a zip archive nor a pickle"),
             "flipped.pth": (data[:-200_000] + bytes(b ^ 1 for b in data[-200_000:-100_000]) + data[-100_000:],
                             "fails its checksum")}
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsError, match=expected):
            check_weights_file(tmp_path / name)
    resnet = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, resnet)
    with pytest.raises(WeightsError, match=r"holds no VGG19 weights for features\.0"):
        check_weights_file(resnet)
