"""Whether the model stack's installed versions still fit each other, checked before ``hf-infer serve`` starts.

pip honours installed packages' requirements only when they are installed in the same command: a
later ``pip install langchain-huggingface`` (an older one) may downgrade ``huggingface-hub`` under
``transformers``, with a warning, and the server then failed to load its model with an ImportError
that only 503 bodies showed. No range of this package can prevent that, so the server checks the
installed versions against what ``sentence-transformers`` and ``transformers`` declare, and refuses
to start with the command that mends it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata

__all__ = ["STACK", "broken_requirements"]

# The packages whose declared requirements the served model needs met, in import order.
STACK = ("sentence-transformers", "transformers", "tokenizers", "huggingface-hub")


def broken_requirements(
    packages: Iterable[str] = STACK,
    requires: Callable[[str], list[str] | None] = metadata.requires,
    version: Callable[[str], str] = metadata.version,
) -> list[str]:
    """Each unmet requirement among ``packages``, as ``"transformers 5.24.0 needs huggingface-hub>=1.31 (0.36.0 installed)"``."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    names = {canonicalize_name(p) for p in packages}
    problems = []
    for package in packages:
        try:
            declared = requires(package) or []
            own = version(package)
        except metadata.PackageNotFoundError:
            continue
        for line in declared:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) not in names or requirement.marker is not None:
                continue
            try:
                installed = version(requirement.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{package} {own} needs {requirement} (not installed)")
                continue
            if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
                problems.append(f"{package} {own} needs {requirement} ({installed} installed)")
    return problems
