"""Stage 3 starts from stage 2's encoder/decoder and stage 1's DenseNet121 (SPEC §1)."""

from __future__ import annotations

from pathlib import Path

from cxrtool.config.training import JointConfig
from cxrtool.errors import InputError
from cxrtool.log import warn
from cxrtool.models.autoencoder import box_init_
from cxrtool.models.checkpoints import load_parts, model_file
from cxrtool.models.joint import JointModel


def _load_into(model: JointModel, path: str, prefixes: tuple[str, ...], kinds: tuple[str, ...], flag: str) -> None:
    tensors = load_parts(model_file(Path(path), flag=flag), prefixes, kinds=kinds, flag=flag)
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if k.startswith(prefixes)]
    if missing or result.unexpected_keys:
        bad = (missing or result.unexpected_keys)[0]
        raise InputError(f"{path} ({flag}) does not fit the joint model: {bad}")


def build_joint(stage: JointConfig) -> tuple[JointModel, str | None]:
    """The joint model with its parts loaded from `--autoencoder` and `--classifier` (run dirs or files), and where
    DenseNet's weights came from when they were not a stage-1 run's; a part left out is built as its own command
    would build it, with a warning."""
    from cxrtool.models.classifier import load_pretrained_

    model, weights_source = JointModel(), None
    if stage.autoencoder:
        _load_into(model, str(stage.autoencoder), ("encoder.", "decoder."), ("autoencoder", "joint"), "--autoencoder")
    else:
        warn("no --autoencoder given: the encoder and decoder start from the box init, as `train-ae` would")
        box_init_(model.encoder, model.decoder)
    if stage.classifier:
        _load_into(model, str(stage.classifier), ("densenet.",), ("classifier", "joint"), "--classifier")
    else:
        pretrained = stage.pretrained or stage.weights is not None
        warn(
            f"no --classifier given: DenseNet121 starts from {'ImageNet' if pretrained else 'random'} weights, as "
            "`train-classifier` would"
        )
        if pretrained:
            weights_source = load_pretrained_(model, Path(stage.weights) if stage.weights else None)
    return model, weights_source
