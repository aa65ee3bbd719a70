"""`cxrtool check`: is a dataset folder complete and readable before a day-long run?"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cxrtool.data.dicom import dicom_window
from cxrtool.data.images import ImageIndex, ImageReadError, image_header, open_image
from cxrtool.data.metadata import locate, read_metadata

CATEGORIES = ("missing", "extra", "unreadable", "unexpected_size", "unexpected_mode")


@dataclass
class CheckReport:
    expected: int
    found: int
    size: tuple[int, int] | None
    modes: tuple[str, ...]
    problems: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


def _inspect(path: str, decode: bool, window: str) -> tuple[str, int, int, str, str | None]:
    """(path, width, height, mode, error) for one file; runs in a worker process."""
    try:
        width, height, mode = image_header(Path(path))
        if decode:
            open_image(Path(path), dicom_window=window)  # a full decode finds truncated files a header read misses
        return path, width, height, mode, None
    except ImageReadError as e:
        return path, 0, 0, "", str(e)


def check_dataset(
    data_dir: Path,
    images: Path,
    *,
    metadata: Path | None = None,
    size: tuple[int, int] | None = None,
    modes: tuple[str, ...] = ("L",),
    decode: bool = True,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> CheckReport:
    """Compare the metadata with the files under `images`; without `size`, the most common size is expected."""
    files = locate(data_dir, metadata=metadata)
    expected = set(read_metadata(files.metadata)["image"])
    index = ImageIndex.build(images)
    report = CheckReport(expected=len(expected), found=len(index), size=size, modes=modes)
    report.problems["missing"] = sorted(expected - set(index.relpaths))
    report.problems["extra"] = sorted(set(index.relpaths) - expected)
    present = sorted(expected & set(index.relpaths))
    paths = [str(index.path(name)) for name in present]
    workers = workers or max(1, min(8, (os.cpu_count() or 1)))
    results = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(_inspect, paths, [decode] * len(paths), [dicom_window()] * len(paths), chunksize=32):
            results.append(result)
            if progress:
                progress(1)
    readable = [r for r in results if r[4] is None]
    report.problems["unreadable"] = [f"{Path(r[0]).name}: {r[4]}" for r in results if r[4] is not None]
    if report.size is None and readable:
        report.size = Counter((r[1], r[2]) for r in readable).most_common(1)[0][0]
    report.problems["unexpected_size"] = [
        f"{Path(r[0]).name} ({r[1]}x{r[2]})" for r in readable if (r[1], r[2]) != report.size
    ]
    report.problems["unexpected_mode"] = [f"{Path(r[0]).name} ({r[3]})" for r in readable if r[3] not in modes]
    return report
