"""Reproducing the research log (shared/reference/findings.md) on the models at hand.

Two twins of one pattern, over a shared floor:

``common/``     the Profile type, verdict rules, markdown writer, plots helper, run cache, ridge map
``detection/``  ``reproduce detection``  (findings.py, experiments/, run.py, report.py, plots.py)
``steering/``   ``reproduce steering``   (the same file set)

Each twin exposes ``run(profile, setup) -> Results`` and ``publish(results, report_path)``;
:func:`reproduce` runs one, saves its results JSON and writes its section of the report. Each
section sits between its own markers in ``docs/REPRODUCTION.md``, so the two never overwrite
each other."""

from __future__ import annotations

import importlib
from pathlib import Path

from traitscope.errors import TraitscopeError
from traitscope.reproduce.common import DETECTION_PROFILES, STEERING_PROFILES, Profile, Results, Setup, save_results

# section -> its profiles; the twin itself (``traitscope.reproduce.<section>``) loads on first use
SECTIONS = {"detection": DETECTION_PROFILES, "steering": STEERING_PROFILES}


def profile_for(section: str, name: str, sizes: Path | None = None) -> Profile:
    """A section's named profile (``quick`` / ``full``), with the fields of a sizes file replaced."""
    if section not in SECTIONS:
        raise TraitscopeError(f"unknown reproduction {section!r}; valid: {', '.join(SECTIONS)}")
    profiles = SECTIONS[section]
    if name not in profiles:
        raise TraitscopeError(f"unknown {section} profile {name!r}; valid: {', '.join(profiles)}")
    profile = profiles[name]
    return profile.with_overrides(sizes) if sizes is not None else profile


def reproduce(section: str, profile: Profile, setup: Setup, report: Path) -> tuple[Results, dict[str, Path]]:
    """Run one reproduction, save ``<out>/<section>-<profile>.json``, write its report section and
    plots. Returns (results, written paths: ``results``, ``report`` and one per plot)."""
    package = importlib.import_module(f"traitscope.reproduce.{section}")
    results = package.run(profile, setup)
    json_path = save_results(Path(setup.out) / f"{section}-{profile.name}.json", results)
    written = package.publish(results, Path(report))
    return results, {"results": json_path, **written}


__all__ = ["SECTIONS", "profile_for", "reproduce"]
