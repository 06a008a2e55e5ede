"""The model registry: versions, aliases, tags, lineage, model cards.

``resolve(session, "name@3" | "name@champion")`` returns a ``ModelVersion``; ``set_alias`` moves an
alias (audited; ``champion`` needs a passing gate verdict unless forced with a reason);
``register`` stores a packaged model as the next version; ``version_with_content`` finds the version
that already holds a model file's content (one version per content, see ``registry.project``). Functions take an open Session (the
caller's transaction) and, where model bytes are involved, an ObjectStore.
"""

from shipyard.registry.core import (
    ModelVersion,
    delete_alias,
    find_versions,
    parse_ref,
    record_verdict,
    register,
    resolve,
    set_alias,
    tag_version,
    validate_alias,
    version_with_content,
    versions_trained_on,
)

__all__ = [
    "ModelVersion",
    "delete_alias",
    "find_versions",
    "parse_ref",
    "record_verdict",
    "register",
    "resolve",
    "set_alias",
    "tag_version",
    "validate_alias",
    "version_with_content",
    "versions_trained_on",
]
