"""Profiles: what a known ERP's REST API looks like, kept in YAML next to the code.

A source section says ``profile: tryton`` (a file in ``connectors/erp/profiles/``, or a path to
one); the profile's ``source`` keys are defaults under the user's own keys, and each entity may
name one of the profile's ``resources`` (``resource: party.party``; an entity whose name is a
resource needs no ``resource`` key) to inherit its path, fields and filters. Merging is deep for
mappings, except that a mapping with a different ``type``/``style`` replaces the profile's
(choosing another paginator does not inherit the profile's paginator options). Credentials are
never in a profile: the user's config gives the secret reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from concord.errors import ConfigError
from concord.yamlfile import load_yaml

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
_KIND_KEYS = ("type", "style")


def merge(base: Any, override: Any) -> Any:
    """``override`` on top of ``base``; see the module docstring for the rule on ``type``."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    for key in _KIND_KEYS:
        if key in override and key in base and override[key] != base[key]:
            return override
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base[key], value) if key in base else value
    return out


def profile_path(name: str) -> Path:
    """The profile file for a name (``tryton``) or a path to one."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        return path
    return PROFILE_DIR / f"{name}.yaml"


def load_profile(name: str, *, source: str) -> dict[str, Any]:
    """The profile's document (``source`` and ``resources`` mappings)."""
    path = profile_path(name)
    key = f"sources.{source}.profile"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown profile '{name}' (known: {known})", key=key)
    data = load_yaml(path).data
    if not isinstance(data, dict) or not isinstance(data.get("source", {}), dict):
        raise ConfigError(f"{path}: a profile is a mapping with 'source' and 'resources'", key=key)
    return data


def apply_profile(
    source: str, settings: dict[str, Any], entities: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Source and entity settings with the named profile's defaults merged underneath."""
    settings = dict(settings)
    name = settings.pop("profile", None)
    if name is None:
        return settings, entities
    profile = load_profile(str(name), source=source)
    merged = merge(profile.get("source") or {}, settings)
    resources: dict[str, Any] = profile.get("resources") or {}
    out: dict[str, dict[str, Any]] = {}
    for entity, ent in entities.items():
        ent = dict(ent)
        resource = ent.pop("resource", None)
        if resource is None and entity in resources:
            resource = entity
        if resource is not None:
            if resource not in resources:
                raise ConfigError(
                    f"profile '{name}' has no resource '{resource}' "
                    f"(known: {', '.join(sorted(resources))})",
                    key=f"sources.{source}.entities.{entity}.resource",
                )
            ent = merge(resources[resource], ent)
        out[entity] = ent
    return merged, out
