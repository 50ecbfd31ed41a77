"""What only the server knows, for the commands that run in the user's own process.

``ds01 image``, ``ds01 project`` and ``ds01 setup`` write files in the user's home and talk to
Docker through the gateway as the user; the admin's catalogue, the allowed bases, the user's
image limits, the gateway's socket and where the user's workspaces go come from the operation
``projects.settings`` (in-process for root, through ds01-api for everyone else), so the user's
process never needs to read the configuration file.
"""

from __future__ import annotations

import pwd
from typing import Any

import attrs

from ds01_core.api import Operation, ServiceContext, effective_limits
from ds01_projects.bases import base_allowed
from ds01_projects.config import CatalogueEntry, ProjectsConfig


def projects_config(ctx_or_runtime: Any) -> ProjectsConfig:
    """The ``plugins.projects`` section (its defaults when the section is absent)."""
    runtime = getattr(ctx_or_runtime, "runtime", ctx_or_runtime)
    cfg = runtime.plugin_config("projects")
    return cfg if isinstance(cfg, ProjectsConfig) else ProjectsConfig()


def _home(user: str) -> str:
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return f"/home/{user}"


def _expand(template: str, user: str, home: str) -> str:
    return template.replace("{home}", home.rstrip("/") or "/").replace("{user}", user)


def settings(ctx: ServiceContext) -> dict[str, Any]:
    """The caller's settings: catalogue, allowed bases, limits, gateway socket, paths."""
    cfg = projects_config(ctx)
    runtime = ctx.runtime
    user = ctx.caller.name
    home = _home(user)
    limits = effective_limits(runtime, user)
    return {
        "user": user,
        "uid": ctx.caller.uid,
        "admin": ctx.caller.admin,
        "home": home,
        "namespace": f"ds01/{user}",
        "gateway_socket": runtime.config.gateway.socket,
        "workspace_root": _expand(cfg.workspace_root, user, home),
        "images_dir": _expand(cfg.images_dir, user, home),
        "default_base": cfg.default_base,
        "default_gpus": cfg.default_gpus,
        "allowed_bases": cfg.allowed_bases,
        "extra_allowed_bases": list(cfg.extra_allowed_bases),
        "catalogue": [
            {"key": key, **attrs.asdict(entry), "ref": entry.ref}
            for key, entry in sorted(cfg.catalogue.items())
        ],
        "limits": {
            "max_images": limits.get("max_images"),
            "max_image_storage": limits.get("max_image_storage"),
            "max_gpu_equivalents": limits.get("max_gpu_equivalents"),
            "max_containers_per_user": limits.get("max_containers_per_user"),
        },
    }


OPERATIONS = (
    Operation(
        "projects.settings",
        "GET",
        "/v1/projects/settings",
        settings,
        (),
        summary="The base-image catalogue, your image limits, the gateway and your paths.",
    ),
)


@attrs.frozen
class Settings:
    """``projects.settings`` as the client uses it."""

    user: str
    uid: int
    admin: bool
    home: str
    namespace: str
    gateway_socket: str
    workspace_root: str
    images_dir: str
    default_base: str | None
    default_gpus: int
    allowed_bases: str
    extra_allowed_bases: tuple[str, ...]
    catalogue: dict[str, CatalogueEntry]
    limits: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        catalogue = {}
        for item in data.get("catalogue") or []:
            fields = {f.name for f in attrs.fields(CatalogueEntry)}
            catalogue[item["key"]] = CatalogueEntry(
                **{k: v for k, v in item.items() if k in fields}
            )
        return cls(
            user=data["user"],
            uid=int(data["uid"]),
            admin=bool(data["admin"]),
            home=data["home"],
            namespace=data["namespace"],
            gateway_socket=data["gateway_socket"],
            workspace_root=data["workspace_root"],
            images_dir=data["images_dir"],
            default_base=data.get("default_base"),
            default_gpus=int(data.get("default_gpus") or 0),
            allowed_bases=data.get("allowed_bases") or "any",
            extra_allowed_bases=tuple(data.get("extra_allowed_bases") or ()),
            catalogue=catalogue,
            limits=dict(data.get("limits") or {}),
        )

    def repository(self, name: str) -> str:
        """The user's repository for image ``name``: ``ds01/<user>/<name>``."""
        return f"{self.namespace}/{name}"

    def base_allowed(self, ref: str) -> bool:
        """Whether ``ref`` may be a base (:func:`ds01_projects.bases.base_allowed`, the rule
        the gateway applies to every build)."""
        return base_allowed(
            ref,
            user=self.user,
            allowed_bases=self.allowed_bases,
            catalogue_images=[entry.image for entry in self.catalogue.values()],
            extra_patterns=self.extra_allowed_bases,
        )


def load_settings(state: Any) -> Settings:
    """Ask the server (``state`` is the command's CliState) for the caller's settings."""
    return Settings.from_json(state.call("projects.settings"))
