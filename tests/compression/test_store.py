import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from cxrtool import __version__
from cxrtool.compression import store as fmt
from cxrtool.compression.compress import CompressOptions, compress_folder, parse_part, part_out_dir
from cxrtool.compression.decompress import decompress_store, rec_names
from cxrtool.compression.merge import merge_parts
from cxrtool.data.images import load_gray
from cxrtool.data.transforms import resize
from cxrtool.errors import InputError, Interrupted, RunFailure
from cxrtool.models.autoencoder import AutoEncoder
from cxrtool.models.checkpoints import save_model


def write_images(root: Path) -> None:
    """12 images: nested folders, odd sides, a duplicate name, RGBA, 16-bit, JPEG."""
    rng = np.random.default_rng(0)

    def smooth(h: int, w: int) -> np.ndarray:
        y, x = np.mgrid[0:h, 0:w]
        return 0.5 + 0.3 * np.sin(x / 5.0 + rng.uniform(0, 6)) * np.cos(y / 7.0) + rng.normal(0, 0.03, (h, w))

    def save(rel: str, img: Image.Image) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel)

    for i, (h, w) in enumerate([(33, 47), (32, 32), (64, 48), (37, 41), (30, 30), (45, 62), (40, 36)]):
        pixels = np.clip(smooth(h, w) * 255, 0, 255).astype(np.uint8)
        save(f"{'a/b/' if i % 2 else 'a/'}img{i}.png", Image.fromarray(pixels))
    save("c/img1.png", Image.fromarray(np.clip(smooth(35, 50) * 255, 0, 255).astype(np.uint8)))  # same name
    rgba = np.clip(smooth(44, 39) * 255, 0, 255).astype(np.uint8)
    save("c/rgba.png", Image.fromarray(np.stack([rgba, rgba, rgba, np.full_like(rgba, 200)], -1), "RGBA"))
    save("deep16.png", Image.fromarray(np.clip(smooth(42, 34) * 65535, 0, 65535).astype(np.uint16)))
    save("photo.jpg", Image.fromarray(np.clip(smooth(50, 40) * 255, 0, 255).astype(np.uint8)))
    save("photo.png", Image.fromarray(np.clip(smooth(31, 29) * 255, 0, 255).astype(np.uint8)))


def tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("images") / "in"
    write_images(root)
    return root


@pytest.fixture
def broken(images: Path, tmp_path: Path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(images, root)
    (root / "a" / "b" / "bad.png").write_bytes(b"\x89PNG not really")
    return root


def save_ae(path: Path, init: str = "box", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_model(path, AutoEncoder(init=init), kind="autoencoder", labels=(), input_spec={}, config={})
    return path


@pytest.fixture(scope="module")
def ae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_ae(tmp_path_factory.mktemp("ckpt") / "ae.safetensors")


@pytest.fixture(scope="module")
def joint(tmp_path_factory: pytest.TempPathFactory):
    """A joint-kind file with the joint model's encoder and decoder (what compress reads) and its latent clamp; its
    DenseNet121 is left out, as building one costs seconds."""
    torch.manual_seed(1)
    model = AutoEncoder(init="random", clamp_latent=True).eval()  # encode() = JointModel.encode
    path = tmp_path_factory.mktemp("ckpt") / "joint.safetensors"
    save_model(path, model, kind="joint", labels=("A", "B"), input_spec={"crop": 32}, config={})
    return path, model


def compress(in_dir: Path, out: Path, ckpt: Path, **options):
    return compress_folder(in_dir, out, CompressOptions(ckpt=ckpt, **{"shard_size": 4, "workers": 0, **options}))


def store_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != fmt.SUMMARY}


@pytest.fixture
def one_thread():
    """Tiny convolutions on a busy 2-core machine: the intra-op pool costs more than the arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_round_trip_matches_the_models_reconstruction(
    images: Path, ae: Path, tmp_path: Path, dtype: str, one_thread: None
) -> None:
    before = tree_hash(images)
    report = compress(images, tmp_path / "store", ae, dtype=dtype)
    assert tree_hash(images) == before  # nothing under IN_DIR is modified
    assert report.summary["encoded"] == 12 and not report.errors
    decompress_store(tmp_path / "store", tmp_path / "rec")
    model = AutoEncoder(init="box").eval()
    names = rec_names(sorted(tree_hash(images)))
    assert names["photo.jpg"] == "photo.jpg.png" and names["photo.png"] == "photo.png"  # no collision
    for rel, target in names.items():
        x = torch.from_numpy(load_gray(images / rel))[None, None]
        with torch.no_grad():
            direct = model(x)["x_hat"][0, 0].mul(255).round().numpy()
        rec = Image.open(tmp_path / "rec" / target)
        assert rec.mode == "L" and rec.size == (x.shape[-1], x.shape[-2])  # original size: padding cropped back
        assert np.abs(np.asarray(rec, dtype=np.float64) - direct).max() <= 1.0  # up to rounding of the latent


def test_manifest_summary_and_bytes(images: Path, ae: Path, tmp_path: Path) -> None:
    import pandas as pd

    u8 = compress(images, tmp_path / "u8", ae, entropy="none").summary
    f16 = compress(images, tmp_path / "f16", ae, dtype="float16").summary
    assert (u8["dtype"], f16["dtype"], f16["entropy"]) == ("uint8", "float16", "none")  # float16 is always raw
    manifest = pd.read_csv(tmp_path / "u8" / fmt.MANIFEST)
    assert tuple(manifest.columns) == fmt.MANIFEST_COLUMNS
    assert (
        list(manifest["rel_path"]) == sorted(manifest["rel_path"]) and (manifest["key"] == manifest["rel_path"]).all()
    )
    row = manifest.set_index("rel_path").loc["a/img0.png"]
    assert (row.orig_width, row.orig_height, row.latent_width, row.latent_height) == (47, 33, 12, 9)
    assert row.orig_mode == "L" and row.bytes == 108 and row.shard == "latents-00000.safetensors"
    modes = dict(zip(manifest["rel_path"], manifest["orig_mode"]))
    assert modes["c/rgba.png"] == "RGBA" and modes["deep16.png"].startswith("I")
    shards = sorted((tmp_path / "u8").glob("latents-*.safetensors"))
    assert [p.name for p in shards] == [fmt.shard_name(k) for k in range(3)]
    on_disk = sum(p.stat().st_size for p in shards)
    pixels = int((manifest["orig_width"] * manifest["orig_height"]).sum())
    assert u8["bytes_out"] == on_disk and u8["bits_per_pixel"] == pytest.approx(8 * on_disk / pixels)
    data = int(manifest["bytes"].sum())
    assert pd.read_csv(tmp_path / "f16" / fmt.MANIFEST)["bytes"].sum() == 2 * data  # float16: twice the data
    assert 0 <= f16["bytes_out"] - u8["bytes_out"] - data <= len(manifest) + 16 * len(shards)  # "F16" vs "U8"
    with safe_open(str(shards[0]), framework="np") as f:  # a standard safetensors file
        meta = f.metadata()
        assert meta["cxrtool.encoder_sha256"] == u8["encoder_sha256"] and meta["cxrtool.dtype"] == "uint8"
        assert f.get_tensor("a/img0.png").shape == (9, 12)


def test_joint_checkpoint_at_size_and_reader_api(images: Path, joint, tmp_path: Path) -> None:
    path, model = joint
    summary = compress(images, tmp_path / "s", path, size=32).summary
    assert summary["ckpt_kind"] == "joint" and summary["size"] == 32 and summary["latent_outside_unit"] == 0.0
    store = fmt.open_store(tmp_path / "s")
    assert store.identity == summary["encoder_sha256"] and (store.manifest["latent_height"] == 8).all()
    latents = store.read(["c/rgba.png", "a/img0.png"])
    assert list(latents) == ["c/rgba.png", "a/img0.png"]
    for rel, z in latents.items():
        x = torch.from_numpy(np.asarray(resize_unit(images / rel, 32)))[None, None]
        with torch.no_grad():
            direct = model.encode(x)[0, 0].numpy()
        assert z.dtype == np.float32 and np.abs(z - direct).max() <= 0.5 / 255 + 1e-5
    assert [k for k, _ in store.iter_latents()] == list(store.manifest["key"])
    fmt.check_identity(store, summary["encoder_sha256"])
    with pytest.raises(InputError, match="encoder identity"):
        fmt.check_identity(store, "0" * 64)
    decompress_store(tmp_path / "s", tmp_path / "rec")
    assert Image.open(tmp_path / "rec" / "a" / "img0.png").size == (32, 32)  # S×S for a --size store


def resize_unit(path: Path, size: int) -> np.ndarray:
    from cxrtool.data.images import open_image, to_unit

    return to_unit(resize(open_image(path), size))


def test_stage2_latents_outside_unit_are_counted_and_clamped(images: Path, tmp_path: Path) -> None:
    ckpt = save_ae(tmp_path / "rand.safetensors", init="random", seed=3)
    summary = compress(images, tmp_path / "s", ckpt).summary
    assert 0 < summary["latent_outside_unit"] <= 1 and summary["latent_clamp"].startswith("to [0, 1]")
    f16 = fmt.open_store(compress(images, tmp_path / "f", ckpt, dtype="float16").out)
    z = np.concatenate([v.ravel() for _, v in f16.iter_latents()])
    assert ((z < 0) | (z > 1)).mean() == pytest.approx(summary["latent_outside_unit"], abs=1e-3)  # unclamped


def test_identity_mismatch_refused_on_decompress(images: Path, ae: Path, tmp_path: Path) -> None:
    compress(images, tmp_path / "s", ae)
    other = save_ae(tmp_path / "other.safetensors", init="random")
    with pytest.raises(InputError) as e:
        decompress_store(tmp_path / "s", tmp_path / "rec", ckpt=other)
    store = fmt.read_summary(tmp_path / "s", flag="x")["encoder_sha256"]
    assert store in str(e.value) and "--ckpt" in str(e.value)
    assert not (tmp_path / "rec").exists()


def test_out_dir_checks(images: Path, ae: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="inside IN_DIR"):
        compress(images, images / "latents", ae)
    assert not (images / "latents").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="no latent store"):
        compress(images, foreign, ae)
    compress(images, tmp_path / "s", ae)
    with pytest.raises(InputError, match="other settings"):
        compress(images, tmp_path / "s", ae, dtype="float16")
    assert compress(images, tmp_path / "s", ae, dtype="float16", overwrite=True).shards_written == 3


def test_unreadable_file_is_listed_and_strict_stops(broken: Path, ae: Path, tmp_path: Path) -> None:
    report = compress(broken, tmp_path / "s", ae)
    assert report.errors and report.errors[0][0] == "a/b/bad.png" and str(broken) not in report.errors[0][1]
    assert (tmp_path / "s" / fmt.ERRORS).read_text().splitlines()[1].startswith("a/b/bad.png,")
    assert report.summary["errors"] == 1 and report.summary["encoded"] == 12
    with pytest.raises(InputError, match=r"bad\.png"):
        compress(broken, tmp_path / "strict", ae, strict=True)
    left = sorted(p.name for p in (tmp_path / "strict").iterdir())
    assert not any(name.endswith(".tmp") for name in left)  # nothing half-written
    bad_shard = sorted(broken.rglob("*.png")).index(broken / "a" / "b" / "bad.png") // 4
    assert fmt.shard_name(bad_shard) not in left


def test_killed_run_resumes_to_the_same_files(images: Path, ae: Path, tmp_path: Path) -> None:
    whole = compress(images, tmp_path / "whole", ae)

    def kill(info: fmt.ShardInfo) -> None:
        raise KeyboardInterrupt

    options = CompressOptions(ckpt=ae, shard_size=4, workers=1)
    with pytest.raises(Interrupted, match="run the same command again"):
        compress_folder(images, tmp_path / "s", options, after_shard=kill)
    assert sorted(p.name for p in (tmp_path / "s").glob("latents-*")) == [fmt.shard_name(0)]
    assert not json.loads((tmp_path / "s" / fmt.SUMMARY).read_text())["complete"]
    (tmp_path / "s" / f".{fmt.shard_name(1)}.x1y2.spill.tmp").write_bytes(b"half a shard")  # a killed writer
    (tmp_path / "s" / f".{fmt.MANIFEST}.x1y2.tmp").write_bytes(b"image,rel")
    resumed = compress_folder(images, tmp_path / "s", options)
    assert (resumed.shards_skipped, resumed.shards_written) == (1, 2)
    assert store_bytes(tmp_path / "s") == store_bytes(tmp_path / "whole")  # no temporaries left either
    assert resumed.summary["bytes_out"] == whole.summary["bytes_out"] and resumed.summary["complete"]


def test_parts_merged_equal_a_single_run(broken: Path, ae: Path, tmp_path: Path) -> None:
    compress(broken, tmp_path / "single", ae)
    for i in range(3):
        compress(broken, tmp_path / f"p{i}", ae, part=(i, 3))
    parts = [tmp_path / f"p{i}" for i in (2, 0, 1)]
    with pytest.raises(InputError, match="each once"):
        merge_parts(parts[:2], tmp_path / "m")
    summary = merge_parts(parts, tmp_path / "m")
    assert store_bytes(tmp_path / "m") == store_bytes(tmp_path / "single")
    single = json.loads((tmp_path / "single" / fmt.SUMMARY).read_text())
    for key in ("images", "encoded", "errors", "shards", "bytes_out", "bits_per_pixel", "part", "encoder_sha256"):
        assert summary[key] == single[key]
    assert fmt.open_store(tmp_path / "m").manifest.shape[0] == 12


def test_a_finished_store_rerun_keeps_its_summary_and_rebuilds_a_damaged_manifest(
    images: Path, ae: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    compress(images, out, ae)
    before = store_bytes(out) | {fmt.SUMMARY: (out / fmt.SUMMARY).read_bytes()}
    again = compress(images, out, ae)
    assert (again.shards_skipped, again.shards_written) == (3, 0)
    assert store_bytes(out) | {fmt.SUMMARY: (out / fmt.SUMMARY).read_bytes()} == before  # the timings too
    lines = (out / fmt.MANIFEST).read_text().splitlines(keepends=True)
    (out / fmt.MANIFEST).write_text("".join(lines[:3] + lines[4:]))  # one image's row lost
    compress(images, out, ae)
    assert (out / fmt.MANIFEST).read_bytes() == before[fmt.MANIFEST]


def test_decompress_of_a_store_whose_manifest_lacks_an_image_writes_the_rest_and_exits_3(
    images: Path, ae: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from cxrtool.cli.app import app

    out = tmp_path / "s"
    compress(images, out, ae)
    lines = (out / fmt.MANIFEST).read_text().splitlines(keepends=True)
    lost = lines[5].split(",")[1]  # rel_path
    (out / fmt.MANIFEST).write_text("".join(lines[:5] + lines[6:]))
    done = CliRunner().invoke(app, ["decompress", str(out), str(tmp_path / "rec"), "--ckpt", str(ae)])
    assert done.exit_code == 3, done.output
    assert lost in done.output and "manifest.csv" in done.output
    written = sorted(str(p.relative_to(tmp_path / "rec")) for p in (tmp_path / "rec").rglob("*.png"))
    assert len(written) == 11 and lost.replace(".jpg", ".png") not in written


def test_a_merge_with_an_incomplete_part_leaves_out_untouched(broken: Path, ae: Path, tmp_path: Path) -> None:
    for i in range(2):
        compress(broken, tmp_path / f"p{i}", ae, part=(i, 2))
    merge_parts([tmp_path / "p0", tmp_path / "p1"], tmp_path / "old")
    old = store_bytes(tmp_path / "old") | {fmt.SUMMARY: (tmp_path / "old" / fmt.SUMMARY).read_bytes()}
    next(iter(sorted((tmp_path / "p1").glob("latents-*.safetensors")))).unlink()
    with pytest.raises(InputError, match=r"p1 holds 1 shard\(s\) where its summary.json promises 2"):
        merge_parts([tmp_path / "p0", tmp_path / "p1"], tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(InputError, match="promises 2"):
        merge_parts([tmp_path / "p0", tmp_path / "p1"], tmp_path / "old", overwrite=True)
    assert store_bytes(tmp_path / "old") | {fmt.SUMMARY: (tmp_path / "old" / fmt.SUMMARY).read_bytes()} == old


def test_shard_option_and_torchrun_environment(tmp_path: Path) -> None:
    assert parse_part("1/4", {}) == ((1, 4), False)
    assert parse_part(None, {"RANK": "2", "WORLD_SIZE": "3"}) == ((2, 3), True)
    assert parse_part(None, {}) == ((0, 1), False)
    assert part_out_dir(tmp_path, (2, 3), True) == tmp_path / "part-2-of-3"
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(InputError, match="--shard"):
            parse_part(bad, {})


def read_plainly(shard: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """A shard read without cxrtool, as the README shows: safetensors, then Pillow for a coded latent."""
    import io

    with safe_open(str(shard), framework="np") as f:
        meta = f.metadata()
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (a safe_open handle)
    if "+" not in meta["cxrtool.dtype"]:
        return meta, tensors
    return meta, {key: np.asarray(Image.open(io.BytesIO(t.tobytes())).convert("L")) for key, t in tensors.items()}


@pytest.mark.parametrize("entropy", ["png", "webp"])
def test_coded_store_holds_the_raw_latents_losslessly(images: Path, ae: Path, tmp_path: Path, entropy: str) -> None:
    import pandas as pd

    raw = compress(images, tmp_path / "raw", ae, entropy="none").summary
    options = {} if entropy == "png" else {"entropy": entropy}  # png is the default for uint8
    coded = compress(images, tmp_path / "coded", ae, **options).summary
    assert (coded["dtype"], coded["entropy"], raw["dtype"]) == (f"uint8+{entropy}", entropy, "uint8")
    raw_rows = pd.read_csv(tmp_path / "raw" / fmt.MANIFEST)
    rows = pd.read_csv(tmp_path / "coded" / fmt.MANIFEST)
    assert (rows["dtype"] == f"uint8+{entropy}").all() and (raw_rows["dtype"] == "uint8").all()
    same = ["rel_path", "shard", "key", "orig_width", "orig_height", "orig_mode", "latent_height", "latent_width"]
    assert rows[same].equals(raw_rows[same])
    sizes = {}
    for shard in sorted((tmp_path / "coded").glob("latents-*.safetensors")):
        meta, latents = read_plainly(shard)
        _, expected = read_plainly(tmp_path / "raw" / shard.name)
        assert list(latents) == list(expected) and meta["cxrtool.dtype"] == f"uint8+{entropy}"
        shapes = json.loads(meta["cxrtool.latent_shapes"])
        assert shapes == [list(expected[rel].shape) for rel, *_ in json.loads(meta["cxrtool.images"])]
        for key, latent in latents.items():
            assert latent.dtype == np.uint8 and np.array_equal(latent, expected[key])  # lossless
        with safe_open(str(shard), framework="np") as f:
            sizes.update({key: f.get_tensor(key).size for key in f.keys()})  # noqa: SIM118 (a safe_open handle)
    assert dict(zip(rows["key"], rows["bytes"])) == sizes  # the manifest counts the coded bytes
    on_disk = sum(p.stat().st_size for p in (tmp_path / "coded").glob("latents-*.safetensors"))
    pixels = int((rows["orig_width"] * rows["orig_height"]).sum())
    assert coded["bytes_out"] == on_disk and coded["bits_per_pixel"] == pytest.approx(8 * on_disk / pixels)
    store, plain = fmt.open_store(tmp_path / "coded"), fmt.open_store(tmp_path / "raw")
    for shard in sorted((tmp_path / "coded").glob("latents-*.safetensors")):
        for key, latent in read_plainly(shard)[1].items():  # cxrtool's reading equals the plain one
            assert np.array_equal(store.stored([key])[key], latent)
    keys = list(rows["key"])[::-1]
    for key, z in store.read(keys).items():
        assert z.dtype == np.float32 and np.array_equal(z, plain.read([key])[key])
    assert [k for k, _ in store.iter_latents()] == list(rows["key"])


def test_coded_round_trip_gives_the_raw_stores_pngs(images: Path, ae: Path, tmp_path: Path, one_thread) -> None:
    compress(images, tmp_path / "raw", ae, entropy="none")
    compress(images, tmp_path / "png", ae)
    decompress_store(tmp_path / "raw", tmp_path / "rec_raw")
    decompress_store(tmp_path / "png", tmp_path / "rec_png")
    assert tree_hash(tmp_path / "rec_png") == tree_hash(tmp_path / "rec_raw") and len(tree_hash(images)) == 12


def test_worker_count_does_not_change_the_files(images: Path, ae: Path, tmp_path: Path) -> None:
    one = compress(images, tmp_path / "w0", ae, workers=0)
    two = compress(images, tmp_path / "w2", ae, workers=2)
    assert two.summary["workers"] == 2 and one.summary["workers"] == 0
    assert store_bytes(tmp_path / "w2") == store_bytes(tmp_path / "w0")


GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store_v1"


def test_a_store_written_before_coding_reads_and_is_still_written_the_same(tmp_path: Path) -> None:
    """golden/store_v1: three images, a random-init autoencoder and the store cxrtool wrote from them before coded
    latents existed (commit 106da13, --shard-size 2)."""
    old = fmt.open_store(GOLDEN / "store")
    assert old.dtype == "uint8" and "entropy" not in old.summary
    _, tensors = read_plainly(GOLDEN / "store" / fmt.shard_name(0))
    np.testing.assert_allclose(old.read(["a.png"])["a.png"], tensors["a.png"] / 255.0, rtol=1e-6)
    ckpt = GOLDEN / "ae.safetensors"
    new = compress(GOLDEN / "images", tmp_path / "new", ckpt, shard_size=2, entropy="none")
    # The raw format is unchanged: the same bytes but for the version that wrote them (same length: 0.1.0, 0.2.0).
    old_bytes, new_bytes = store_bytes(GOLDEN / "store"), store_bytes(tmp_path / "new")
    assert new_bytes.keys() == old_bytes.keys()
    for name, data in old_bytes.items():
        assert new_bytes[name] == data.replace(
            b'"cxrtool.version":"0.1.0"', f'"cxrtool.version":"{__version__}"'.encode()
        )
    decompress_store(GOLDEN / "store", tmp_path / "rec_old", ckpt=ckpt)
    compress(GOLDEN / "images", tmp_path / "png", ckpt, shard_size=2)
    decompress_store(tmp_path / "png", tmp_path / "rec_png", ckpt=ckpt)
    assert tree_hash(tmp_path / "rec_png") == tree_hash(tmp_path / "rec_old")
    with pytest.raises(InputError, match="--entropy"):  # resuming it takes --entropy none
        shutil.copytree(GOLDEN / "store", tmp_path / "resume")
        compress(GOLDEN / "images", tmp_path / "resume", ckpt, shard_size=2)
    assert new.summary["bits_per_pixel"] == json.loads((GOLDEN / "store" / fmt.SUMMARY).read_text())["bits_per_pixel"]


def test_entropy_options_and_a_damaged_latent(images: Path, ae: Path, tmp_path: Path) -> None:
    for options, flag in (({"entropy": "zip"}, "--entropy"), ({"dtype": "float16", "entropy": "png"}, "--dtype")):
        with pytest.raises(InputError, match=flag):
            compress(images, tmp_path / "bad", ae, **options)
    assert not (tmp_path / "bad").exists()
    compress(images, tmp_path / "s", ae)
    shard = tmp_path / "s" / fmt.shard_name(0)
    with safe_open(str(shard), framework="np") as f:
        key = next(iter(f.keys()))
        size = f.get_tensor(key).size
    data = bytearray(shard.read_bytes())
    start = len(data) - sum(r.bytes for r in fmt.read_shard(shard).records)  # the first tensor's data
    data[start + size // 2] ^= 0xFF  # one byte inside its compressed data
    shard.write_bytes(bytes(data))
    store = fmt.open_store(tmp_path / "s")
    with pytest.raises(InputError, match=r"latents-00000\.safetensors.*damaged"):
        store.read([key])


def test_info_describes_a_coded_store(images: Path, ae: Path, tmp_path: Path) -> None:
    from cxrtool.info import describe

    summary = compress(images, tmp_path / "s", ae, entropy="webp").summary
    info = describe(tmp_path / "s")
    assert info["artifact"] == "latent store" and info["dtype"] == "uint8+webp" and info["shards"] == 3
    assert info["bits_per_pixel"] == summary["bits_per_pixel"] < 8 * 1.0  # tiny images: headers weigh a lot


def test_real_radiographs_take_at_most_0_3_bits_per_pixel_coded(real_data: Path, tmp_path: Path) -> None:
    """The issue's budget on real 1024² radiographs: the default (PNG-coded) store of box-initialised latents (4×4
    averages, as smooth as a trained model's), bytes on disk, headers included."""
    folder = tmp_path / "in"
    folder.mkdir()
    for path in sorted((real_data / "images").glob("*.png"))[:8]:
        shutil.copyfile(path, folder / path.name)
    summary = compress(folder, tmp_path / "s", save_ae(tmp_path / "ae.safetensors"), shard_size=1024).summary
    assert summary["encoded"] == 8 and summary["dtype"] == "uint8+png"
    assert summary["bits_per_pixel"] <= 0.30, summary["bits_per_pixel"]  # 0.50 raw


def _die(indices: range) -> None:
    os._exit(1)  # as the kernel's OOM killer would end a worker


def test_a_worker_that_dies_fails_the_run_without_a_partial_shard(
    images: Path, ae: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrtool.compression import compress as compress_module

    monkeypatch.setattr(compress_module, "_encode_chunk", _die)
    with pytest.raises(RunFailure, match=r"worker process.*died"):
        compress(images, tmp_path / "s", ae, workers=2)
    assert not list((tmp_path / "s").glob("*latents-*"))  # no shard, no temporary left
