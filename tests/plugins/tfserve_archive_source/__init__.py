"""A source plug-in as a third party would write one: model versions shipped as ``<version>.tar`` files.

``archive:///abs/folder`` names a folder of archives; each archive is unpacked once
into ``<folder>/.unpacked/<version>`` (standing in for a download cache) and that
folder is the version the server loads. Adding ``3.tar`` publishes version 3.
"""

from __future__ import annotations

import os
import tarfile

PREFIX = "archive://"


class ArchiveSource:
    def list_versions(self, base_path: str) -> dict[int, str]:
        folder = base_path[len(PREFIX) :]
        versions = {}
        for name in os.listdir(folder):
            stem, ext = os.path.splitext(name)
            if ext != ".tar" or not stem.isdigit():
                continue
            target = os.path.join(folder, ".unpacked", stem)
            if not os.path.isdir(target):
                staging = target + ".partial"
                with tarfile.open(os.path.join(folder, name)) as archive:
                    archive.extractall(staging, filter="data")
                os.replace(staging, target)
            versions[int(stem)] = target
        return versions
