"""The project model, the devcontainer.json, the generated files and the package finder, without
Docker: what each file says and every way a hand-edited file can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from ds01_core.api import Invalid, ServiceError
from ds01_projects.devcontainer import devcontainer_config
from ds01_projects.imagespec import ImageSpec, write_definition
from ds01_projects.project import (
    PROJECT_FILE,
    GpuChoice,
    Project,
    load_project,
    save_project,
)
from ds01_projects.retire import Container, Packages, merge, packages_from_changes
from ds01_projects.scaffold import Generated
from ds01_projects.settings import Settings


def _project(tmp_path: Path, **kw: object) -> Project:
    fields: dict[str, object] = {"name": "demo", "directory": tmp_path, "container": "u-demo"}
    fields.update(kw)
    return Project(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "gpu, saved",
    [
        (GpuChoice(gpus=2), {"gpus": 2}),
        (GpuChoice(mig="2g.20gb"), {"mig": "2g.20gb"}),
        (GpuChoice(cpu_only=True), {"gpus": 0}),
    ],
)
def test_a_saved_project_loads_the_same(tmp_path: Path, gpu: GpuChoice, saved: dict) -> None:
    project = _project(tmp_path, gpu=gpu, image="demo")
    save_project(project)
    loaded = load_project(tmp_path)
    assert loaded.to_yaml() == {"name": "demo", "image": "demo", **saved, "container": "u-demo"}
    assert loaded.gpu == gpu


@pytest.mark.parametrize(
    "text, says",
    [
        ("name: [1\n", "is not valid YAML"),
        ("- a\n", "expected a mapping"),
        ("name: demo\ncontainer: c\ncolour: red\n", "unknown field(s) colour"),
        ("container: c\n", "name is missing"),
        ("name: Demo\ncontainer: c\n", "invalid project name"),
        ("name: demo\ncontainer: c\ngpus: -1\n", "gpus must be a whole number"),
        ("name: demo\ncontainer: c\ngpus: yes\n", "gpus must be a whole number"),
        ("name: demo\ncontainer: c\ngpus: 1\nmig: 1g.10gb\n", "give gpus or mig, not both"),
        ("name: demo\ncontainer: c\nmig: large\n", "is not a MIG profile"),
        ("name: demo\n", "container is missing"),
        ("name: demo\ncontainer: 'a b'\n", "is not a container name"),
    ],
)
def test_a_broken_project_file_names_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / PROJECT_FILE).write_text(text)
    with pytest.raises(ServiceError) as caught:
        load_project(tmp_path)
    assert says in caught.value.message and str(tmp_path) in caught.value.message


def test_no_project_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="ds01 project init NAME"):
        load_project(tmp_path)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ((None, None, False), None),
        ((3, None, False), GpuChoice(gpus=3)),
        ((0, None, False), GpuChoice(cpu_only=True)),
        ((None, "1g.10gb", False), GpuChoice(mig="1g.10gb")),
        ((None, None, True), GpuChoice(cpu_only=True)),
    ],
)
def test_gpu_flags(flags: tuple, expected: GpuChoice | None) -> None:
    assert GpuChoice.from_flags(*flags) == expected


@pytest.mark.parametrize("flags", [(1, "1g.10gb", False), (1, None, True), (None, "x", False)])
def test_gpu_flags_that_contradict_or_are_wrong(flags: tuple) -> None:
    with pytest.raises(Invalid):
        GpuChoice.from_flags(*flags)


@pytest.mark.parametrize(
    "gpu, run_args",
    [
        (GpuChoice(gpus=2), ["--gpus", "2"]),
        (GpuChoice(mig="3g.40gb"), ["--gpus", "1"]),  # the gateway takes a count only
        (GpuChoice(cpu_only=True), []),
    ],
)
def test_devcontainer_asks_the_gateway_for_a_count(
    tmp_path: Path, gpu: GpuChoice, run_args: list[str]
) -> None:
    config = devcontainer_config(_project(tmp_path, gpu=gpu), 1234, 99)
    assert config["runArgs"] == run_args
    assert "hostRequirements" not in config  # the CLI would make it --gpus all: refused
    assert config["containerUser"] == "1234:99" and config["updateRemoteUserUID"] is False
    assert config["build"] == {"dockerfile": "../Dockerfile", "context": ".."}
    assert config["workspaceMount"] == (
        "source=${localWorkspaceFolder},target=/workspace,type=bind"
    )


def test_devcontainer_of_an_image_project_names_the_image(tmp_path: Path) -> None:
    config = devcontainer_config(_project(tmp_path, image_ref="pytorch/pytorch:2.4"), 1, 1)
    assert config["image"] == "pytorch/pytorch:2.4" and "build" not in config


def test_generated_files_are_rewritten_only_while_nobody_changed_them(tmp_path: Path) -> None:
    files = Generated(tmp_path)
    assert files.write("a.txt", "one\n").action == "created"
    assert files.write("b.txt", "one\n").action == "created"
    files.save()
    (tmp_path / "b.txt").write_text("mine\n")
    again = Generated(tmp_path)
    assert again.write("a.txt", "one\n").action == "unchanged"
    assert again.write("a.txt", "two\n").action == "updated"
    assert again.write("b.txt", "two\n").action == "kept"
    again.save()
    assert (tmp_path / "a.txt").read_text() == "two\n"
    assert (tmp_path / "b.txt").read_text() == "mine\n"
    assert Generated(tmp_path).write("b.txt", "three\n").action == "kept"


def test_packages_come_from_added_paths_only() -> None:
    changes = [
        {"Kind": 1, "Path": "/usr/local/lib/python3.11/site-packages/Flask_Cors-4.0.0.dist-info"},
        {"Kind": 1, "Path": "/usr/lib/python3/dist-packages/numpy-1.26.4.dist-info"},
        {"Kind": 1, "Path": "/opt/py/site-packages/six-1.16.0-py3.11.egg-info"},
        {"Kind": 1, "Path": "/usr/lib/python3/site-packages/pip-24.0.dist-info"},
        {"Kind": 1, "Path": "/usr/lib/python3/site-packages/numpy-1.26.4.dist-info/METADATA"},
        {"Kind": 2, "Path": "/usr/lib/python3/site-packages/torch-2.1.0.dist-info"},
        {"Kind": 0, "Path": "/usr/lib/python3/site-packages/scipy-1.0.dist-info"},
        {"Kind": 1, "Path": "/var/lib/dpkg/info/htop.list"},
        {"Kind": 1, "Path": "/var/lib/dpkg/info/libc6:amd64.list"},
        {"Kind": 1, "Path": "/var/lib/dpkg/info/htop.md5sums"},
        {"Kind": 1, "Path": "/root/var/lib/dpkg/info/fake.list"},
        {"Kind": 1, "Path": "/opt/conda/conda-meta/pytorch-cuda-12.1-ha16c6d3_5.json"},
        {"Kind": 1, "Path": "/opt/conda/conda-meta/history"},
    ]
    found = packages_from_changes(changes)
    assert found.pip == ("flask-cors==4.0.0", "numpy==1.26.4", "six==1.16.0")
    assert found.apt == ("htop", "libc6")
    assert found.conda == ("pytorch-cuda=12.1",)


def test_merge_adds_what_is_new_and_reports_what_is_listed() -> None:
    spec = ImageSpec(name="demo", base="b:1", pip=["Flask-Cors>=3", "torch"], apt=["htop"])
    added, already = merge(
        spec,
        Packages(pip=("flask-cors==4.0.0", "numpy==1.26.4"), apt=("htop", "vim"), conda=()),
    )
    assert spec.pip == ["Flask-Cors>=3", "torch", "numpy==1.26.4"]
    assert spec.apt == ["htop", "vim"]
    assert added == Packages(pip=("numpy==1.26.4",), apt=("vim",))
    assert already == Packages(pip=("flask-cors==4.0.0",), apt=("htop",))


def _settings(tmp_path: Path) -> Settings:
    return Settings.from_json(
        {
            "user": "alice",
            "uid": 1000,
            "admin": False,
            "home": str(tmp_path),
            "namespace": "ds01/alice",
            "gateway_socket": "/nonexistent",
            "workspace_root": str(tmp_path / "projects"),
            "images_dir": str(tmp_path / "images"),
        }
    )


class _NoLabels:
    """A gateway whose images carry none of ds01's build labels (it keeps them to itself)."""

    def inspect_image(self, ref: str) -> dict:
        return {"Id": "sha256:1", "Config": {"Labels": {}}}


def _container(image_ref: str, **labels: str) -> Container:
    return Container("c1", "alice-x", "sha256:1", image_ref, labels, True)


def test_retire_finds_the_definition_by_label_then_by_image_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ds01_projects.retire as retire

    monkeypatch.setattr(retire, "gateway_api", lambda settings: _NoLabels())
    settings = _settings(tmp_path)
    project = tmp_path / "projects" / "x"
    project.mkdir(parents=True)
    save_project(_project(project, name="x", image="x", container="alice-x"))
    write_definition(project, ImageSpec(name="x", base="b:1"), None)
    standalone = tmp_path / "images" / "tools"
    write_definition(standalone, ImageSpec(name="tools", base="b:1"), None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    save_project(_project(elsewhere, name="x", image="x", container="alice-x"))
    write_definition(elsewhere, ImageSpec(name="x", base="b:1"), None)

    by_label = _container("ds01/alice/x:latest", **{"ds01.project": "x"})
    assert retire.definition_dir(settings, by_label) == project
    labelled = {"ds01.project": "x", "ds01.workspace": str(elsewhere)}
    assert retire.definition_dir(settings, _container("b:1", **labelled)) == elsewhere
    assert retire.definition_dir(settings, _container("ds01/alice/x:latest")) == project
    assert retire.definition_dir(settings, _container("ds01/alice/tools:v2")) == standalone
    assert retire.definition_dir(settings, _container("ds01/bob/tools:v2")) is None
    assert retire.definition_dir(settings, _container("busybox:latest")) is None


def test_launch_trusts_the_build_record_when_the_image_has_no_labels(tmp_path: Path) -> None:
    import json

    from ds01_projects.launch import _up_to_date

    project = _project(tmp_path)
    image = {"Id": "sha256:abc", "Config": {"Labels": {}}}
    assert not _up_to_date(project, "ds01/alice/demo:latest", image, "h1")
    (tmp_path / ".ds01").mkdir()
    record = {"ref": "ds01/alice/demo:latest", "id": "sha256:abc", "dockerfile_sha256": "h1"}
    (tmp_path / ".ds01" / "built.json").write_text(json.dumps(record))
    assert _up_to_date(project, "ds01/alice/demo:latest", image, "h1")
    assert not _up_to_date(project, "ds01/alice/demo:latest", image, "h2")  # Dockerfile changed
    assert not _up_to_date(project, "ds01/alice/demo:latest", {**image, "Id": "sha256:x"}, "h1")
    labelled = {"Id": "sha256:new", "Config": {"Labels": {"ds01.image.dockerfile-sha256": "h2"}}}
    assert _up_to_date(project, "ds01/alice/demo:latest", labelled, "h2")
