"""The pure parts of ``ds01 image``: which bases are allowed (and the refusal listing them),
the image limits checked before a build in the gateway's words, and how a container's recipe
is read back from its labels for recreating it."""

from __future__ import annotations

from typing import Any

import pytest

from ds01_core.api import Conflict, Invalid
from ds01_projects.config import CatalogueEntry
from ds01_projects.image_prompts import resolve_base
from ds01_projects.images import ImageRow, check_image_limits
from ds01_projects.recreate import recipe
from ds01_projects.settings import Settings

CATALOGUE = {
    "pytorch": CatalogueEntry(image="pytorch/pytorch", tag="2.4.0-cuda12.1-cudnn9-runtime"),
    "jax": CatalogueEntry(image="nvcr.io/nvidia/jax", tag="24.04-py3", pip_install="uv {packages}"),
}


def _settings(**kw: Any) -> Settings:
    fields: dict[str, Any] = {
        "user": "ds01ta",
        "uid": 1001,
        "admin": False,
        "home": "/home/ds01ta",
        "namespace": "ds01/ds01ta",
        "gateway_socket": "/run/ds01/docker.sock",
        "workspace_root": "/home/ds01ta/projects",
        "images_dir": "/home/ds01ta/.ds01/images",
        "default_base": "pytorch",
        "default_gpus": 1,
        "allowed_bases": "catalogue",
        "extra_allowed_bases": ("nvcr.io/nvidia/*",),
        "catalogue": CATALOGUE,
        "limits": {},
    }
    fields.update(kw)
    return Settings(**fields)


def test_a_catalogue_key_gives_its_reference_and_entry() -> None:
    ref, key, entry = resolve_base(_settings(), "jax")
    assert (ref, key) == ("nvcr.io/nvidia/jax:24.04-py3", "jax")
    assert entry is CATALOGUE["jax"]


def test_another_tag_of_a_catalogue_image_keeps_its_install_commands() -> None:
    ref, key, entry = resolve_base(_settings(), "nvcr.io/nvidia/jax:25.01-py3")
    assert (ref, key, entry) == ("nvcr.io/nvidia/jax:25.01-py3", None, CATALOGUE["jax"])


def test_a_base_outside_the_allowed_ones_is_refused_with_the_list() -> None:
    with pytest.raises(Invalid) as caught:
        resolve_base(_settings(), "python:3.12")
    assert caught.value.message == (
        "the base python:3.12 is not allowed on this server: choose one of jax "
        "(nvcr.io/nvidia/jax:24.04-py3), pytorch (pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime), "
        "images matching nvcr.io/nvidia/*"
    )
    assert resolve_base(_settings(allowed_bases="any"), "python:3.12") == (
        "python:3.12",
        None,
        None,
    )


def _row(name: str, image_id: str, size: int, old: bool = False) -> ImageRow:
    ref = f"ds01/ds01ta/{name}:latest"
    return ImageRow(name, "latest", ref, image_id, size, "", None, (), None, old)


def test_limits_refuse_in_the_gateways_words_and_say_where_the_user_stands() -> None:
    rows = [_row("a", "sha256:1", 1 << 30), _row("b", "sha256:2", 1 << 30)]
    settings = _settings(limits={"max_images": 2, "max_image_storage": 4 << 30})
    with pytest.raises(Conflict) as caught:
        check_image_limits(settings, rows, "ds01/ds01ta/c:latest")
    assert caught.value.message.startswith(
        "you have 2 images and may have 2 (max_images): rebuild one of yours under its own name"
    )
    standing = check_image_limits(settings, rows, "ds01/ds01ta/a:latest")  # a rebuild
    assert standing == "your images: 2 of 2 images, 2.0G of 4.0G"
    full = _settings(limits={"max_images": None, "max_image_storage": 2 << 30})
    with pytest.raises(Conflict, match=r"your image storage limit \(max_image_storage\)"):
        check_image_limits(full, rows, "ds01/ds01ta/a:latest")
    assert check_image_limits(_settings(), rows, "ds01/ds01ta/c:latest") is None


def test_a_recipe_keeps_the_gpu_request_workspace_project_and_command() -> None:
    inspect = {
        "Name": "/train",
        "State": {"Running": True},
        "Config": {
            "Cmd": ["python", "train.py"],
            "Labels": {
                "ds01.origin": "ds01",
                "ds01.gpu.uuids": "GPU-1,GPU-2",
                "ds01.workspace": "/home/ds01ta/projects/x",
                "ds01.project": "x",
            },
        },
    }
    item = recipe(inspect, ["bash"], None, {})
    assert (item.name, item.running, item.by_ds01, item.gpus, item.mig) == (
        "train", True, True, 2, None,
    )  # fmt: skip
    assert item.create_params("new")["command"] == ["python", "train.py"]
    assert item.workspace == "/home/ds01ta/projects/x" and item.project == "x"
    mig = recipe(inspect, ["python", "train.py"], {"gpu_slots": ["MIG-9"]}, {"MIG-9": "2g.20gb"})
    assert (mig.mig, mig.gpus, mig.command) == ("2g.20gb", None, None)
    plain = recipe({"Name": "/x", "Config": {"Labels": {}}}, None, None, {})
    assert (plain.by_ds01, plain.cpu_only) == (False, True)


def test_a_recorded_request_wins_over_the_slots_it_happened_to_get() -> None:
    """``--gpus 2`` that got a MIG slice and a whole GPU is remade as ``--gpus 2``, not as a
    one-slice ``--mig`` request; a recorded ``--mig`` or ``--full-gpu`` stays what it was."""

    def made(request: str) -> dict[str, object]:
        labels = {"ds01.origin": "ds01", "ds01.gpu.uuids": "MIG-9,GPU-2"}
        labels["ds01.gpu.request"] = request
        return {"Name": "/t", "Config": {"Labels": labels}}

    profiles = {"MIG-9": "2g.20gb"}
    two = recipe(made('{"count": 2, "mig": null, "full_gpu": false}'), None, None, profiles)
    assert (two.gpus, two.mig, two.full_gpu, two.cpu_only) == (2, None, False, False)
    mig = recipe(made('{"count": 1, "mig": "3g.40gb"}'), None, None, profiles)
    assert (mig.gpus, mig.mig) == (None, "3g.40gb")
    full = recipe(made('{"count": 1, "full_gpu": true, "min_memory": 42}'), None, None, {})
    assert (full.gpus, full.full_gpu, full.min_memory) == (None, True, 42)
    assert full.create_params("new")["full_gpu"] is True
    # an unreadable record: the slots decide, and two slots are never one MIG request
    bad = recipe(made("not json"), None, None, profiles)
    assert (bad.gpus, bad.mig) == (2, None)
