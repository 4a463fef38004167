"""The installable distribution: a name of its own on the package index, `import matcher` and the
`matcher` command unchanged."""

from __future__ import annotations

import importlib.metadata
import tomllib

from conftest import ROOT, run_matcher

import matcher

#: ``matcher`` on the public package index is an unrelated pattern-matching library: ours is distributed
#: under a name of its own (free on PyPI when chosen, 2026-12-04).
DISTRIBUTION = "perceptual-matcher"


def test_the_distribution_is_not_named_like_someone_elses_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"matcher": "matcher.cli:main"}


def test_the_installed_distribution_provides_the_matcher_command_and_package() -> None:
    dist = importlib.metadata.distribution(DISTRIBUTION)
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    assert scripts == {"matcher": "matcher.cli:main"}
    assert dist.version == matcher.__version__
    done = run_matcher("--version")
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"matcher {matcher.__version__}"
