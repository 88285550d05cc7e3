"""Privacy settings (conf/privacy.yaml)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from jobs.common.config import Strict


class PrivacyConfig(Strict):
    salt: str = Field(
        "change-me",
        min_length=8,
        description="salt of subject and suppression hashes; set it from ${CDP_PRIVACY_SALT} in production",
    )
    landing_rewrite: bool = Field(True, description="rewrite landing files that still hold an erased subject")
    scan_extra_paths: list[str] = Field(default_factory=list, description="more folders the erasure scan covers")
    export_dir: str = Field("privacy_exports", description="folder under lake.root for access-request documents")

    def semantic_problems(self, root: Any) -> list[tuple[str, Any, str]]:
        return []
