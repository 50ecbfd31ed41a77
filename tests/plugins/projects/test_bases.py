"""The allowed-bases rule on its own: catalogue images by repository (any tag, Docker Hub's
implied prefixes), patterns, the user's own namespace, and ``any``."""

from __future__ import annotations

from ds01_projects.bases import base_allowed, repository


def allowed(ref: str, user: str = "alice", rule: str = "catalogue") -> bool:
    return base_allowed(
        ref,
        user=user,
        allowed_bases=rule,
        catalogue_images=["pytorch/pytorch", "ubuntu"],
        extra_patterns=["nvcr.io/nvidia/*"],
    )


def test_repositories_are_compared_without_tags_and_implied_prefixes() -> None:
    assert repository("docker.io/library/ubuntu:22.04") == "ubuntu"
    assert repository("localhost:5000/team/x:1@sha256:ab") == "localhost:5000/team/x"
    assert repository("pytorch/pytorch") == "pytorch/pytorch"


def test_the_catalogue_rule() -> None:
    assert allowed("pytorch/pytorch:2.5.0-cuda12.4-cudnn9-runtime")  # another tag
    assert allowed("docker.io/library/ubuntu:24.04")
    assert allowed("nvcr.io/nvidia/jax:24.04-py3")
    assert allowed("ds01/alice/thesis:latest")  # her own image
    assert not allowed("ds01/bob/thesis:latest")  # not someone else's
    assert not allowed("pytorch/pytorch-nightly:1")
    assert not allowed("python:3.12")
    assert not allowed("evil.example/pytorch/pytorch:2")  # another registry's
    assert allowed("python:3.12", rule="any")
