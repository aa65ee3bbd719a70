"""The 14 ChestX-ray14 findings, spelled as the metadata spells them, in alphabetical order (SPEC §2, Table 1)."""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)

# `No Finding` is the all-zero vector, not a 15th class (SPEC §3).
NO_FINDING = "No Finding"
