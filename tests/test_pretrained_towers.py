"""Pretrained unimodal towers (benchmark.models.pretrained): tiny timm / transformers models saved in tmp_path.

No network: every source is a local file or directory built here, and Hub names are only used to
check the offline error.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmark.errors import ConfigError, DataFileError, MethodError
from benchmark.models.method import BuildContext
from benchmark.models.pretrained import resolve_model_config
from tests.pretrained_fixtures import edit_weights, save_bert

TINY_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
VISION = {"patch_size": 8, "width": 32, "depth": 2, "heads": 2, "mlp_ratio": 4.0}  # the configured sizes
TEXT = {"width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0}  # ignored once text.init is pretrained
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "blue", "cube", "sphere", "on", "the", "left"]
VOCAB += ["right", "of", "small", "large", "##s", "green", "cylinder"]
MAX_LENGTH = 12
SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
CAPTIONS = ["a red cube on the left", "the small blue spheres right of a green cylinder", "a"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_vit(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    import timm

    torch.manual_seed(seed)
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=0, **{**TINY_VIT, **overrides}
    ).eval()


@pytest.fixture(scope="module")
def vit() -> torch.nn.Module:
    return tiny_vit()


@pytest.fixture()
def vit_file(tmp_path: Path, vit: torch.nn.Module) -> Path:
    from safetensors.torch import save_file

    path = tmp_path / "vit.safetensors"
    save_file(vit.state_dict(), str(path))
    return path


@pytest.fixture()
def bert_dir(tmp_path: Path) -> Path:
    """A tiny 2-layer BertModel reading 32 positions, and its tokenizer, saved with save_pretrained."""
    return save_bert(tmp_path / "bert", VOCAB, layers=2, positions=32)


def images(size: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def context(model: dict[str, Any], tokenizer: Any = None, load: bool = True, image_size: int = 32) -> BuildContext:
    vocab = tokenizer.get_vocab_size() if tokenizer is not None else 40
    special = SPECIAL
    if tokenizer is not None:
        from benchmark.data.tokenizer import special_token_ids

        special = special_token_ids(tokenizer)
    size = model["vision"].get("image_size", image_size)
    return BuildContext(model, size, vocab, MAX_LENGTH, special, load_pretrained=load)


# -- vision sources -----------------------------------------------------------------------------
def test_weight_file_loads_into_the_configured_vit(vit: torch.nn.Module, vit_file: Path) -> None:
    model = resolve_model_config({"vision": {**VISION, "init": str(vit_file)}, "text": TEXT, "embed_dim": 16})
    vision = model["vision"]
    assert (vision["width"], vision["depth"], vision["patch_size"], vision["image_size"]) == (32, 2, 8, 32)
    assert vision["arch"] is None and vision["mean"] == [0.5] * 3 and vision["interpolation"] == "bicubic"
    # a single file is keyed by its name: no absolute path, the same provenance on every machine
    assert model["sources"] == {"vision": {"init": str(vit_file), "files": {"vit.safetensors": sha256(vit_file)}}}
    assert model["text"] == TEXT  # a random tower is left as it is
    loaded = context(model).vision_encoder().eval()
    x = torch.rand(2, 3, 32, 32)
    assert (loaded.forward_features(x) - vit.forward_features(x)).abs().max() <= 1e-6


def test_weight_file_with_a_timm_arch(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(2)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    path = tmp_path / "tiny.safetensors"
    save_file(reference.state_dict(), str(path))
    block = {**VISION, "init": str(path), "arch": "vit_tiny_patch16_224"}
    vision = resolve_model_config({"vision": block, "text": TEXT})["vision"]
    assert (vision["width"], vision["depth"], vision["patch_size"], vision["image_size"]) == (192, 12, 16, 224)
    assert vision["arch"] == "vit_tiny_patch16_224" and vision["arch_kwargs"] == {}
    assert len(vision["mean"]) == 3 and vision["interpolation"] in ("bicubic", "bilinear")
    loaded = context({"vision": vision, "text": TEXT}).vision_encoder().eval()
    x = torch.rand(1, 3, 224, 224)
    assert (loaded.forward_features(x) - reference.forward_features(x)).abs().max() <= 1e-6


def test_timm_hub_layout_directory(tmp_path: Path, vit: torch.nn.Module) -> None:
    from timm.models import save_for_hf

    folder = tmp_path / "vit_hub"
    save_for_hf(vit, str(folder), safe_serialization=True)
    model = resolve_model_config({"vision": {**VISION, "init": str(folder)}, "text": TEXT})
    vision = model["vision"]
    assert vision["arch"] == "vit_tiny_patch16_224" and vision["arch_kwargs"]["embed_dim"] == 32
    assert vision["image_size"] == 32 and vision["width"] == 32
    files = {p.name: sha256(p) for p in folder.iterdir()}  # keyed by the path in the folder
    assert model["sources"]["vision"]["files"] == files and len(files) == 2
    loaded = context(model).vision_encoder().eval()
    x = torch.rand(2, 3, 32, 32)
    assert (loaded.forward_features(x) - vit.forward_features(x)).abs().max() <= 1e-6
    rebuilt = context(model, load=False).vision_encoder()  # from arch + arch_kwargs, no file read
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in vit.state_dict().items()}


# -- text sources -------------------------------------------------------------------------------
def test_text_directory_and_its_tokenizer(tmp_path: Path, bert_dir: Path) -> None:
    from transformers import AutoTokenizer, BertModel

    from benchmark.data.tokenizer import encode, export_pretrained_tokenizer, load_tokenizer, special_token_ids

    model = resolve_model_config({"vision": VISION, "text": {**TEXT, "init": str(bert_dir)}}, max_length=MAX_LENGTH)
    text = model["text"]
    assert (text["width"], text["depth"], text["heads"], text["mlp_ratio"]) == (32, 2, 2, 2.0)
    assert text["hf_config"]["hidden_dropout_prob"] == 0.0 and text["hf_config"]["attention_probs_dropout_prob"] == 0.0
    files = {p.name: sha256(p) for p in bert_dir.iterdir()}
    assert model["sources"] == {"text": {"init": str(bert_dir), "files": files}}
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(files)
    json.dumps(model)  # goes into checkpoint metadata

    exported = export_pretrained_tokenizer(str(bert_dir), MAX_LENGTH)
    reference = AutoTokenizer.from_pretrained(str(bert_dir), local_files_only=True)
    expected = reference(CAPTIONS, padding="max_length", max_length=MAX_LENGTH, truncation=True)
    assert encode(exported, CAPTIONS)["input_ids"].tolist() == expected["input_ids"]
    file = tmp_path / "tokenizer.json"
    file.write_text(exported.to_str())
    reloaded = load_tokenizer(file, MAX_LENGTH)
    tokens = encode(reloaded, CAPTIONS)
    assert tokens["input_ids"].tolist() == expected["input_ids"]
    assert tokens["attention_mask"].tolist() == expected["attention_mask"]
    assert special_token_ids(reloaded, file) == SPECIAL

    encoder = context(model, reloaded).text_encoder()
    original = BertModel.from_pretrained(str(bert_dir), local_files_only=True).eval()
    with torch.no_grad():
        want = original(**tokens).last_hidden_state
        got_train = encoder.train()(**tokens).last_hidden_state  # dropout is off: train == eval
        got = encoder.eval()(**tokens).last_hidden_state
    assert (got - want).abs().max() <= 1e-6 and torch.equal(got, got_train)


def test_text_max_length_beyond_the_position_embeddings(bert_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"max_length' \(64\).*32 positions"):
        resolve_model_config({"vision": VISION, "text": {**TEXT, "init": str(bert_dir)}}, max_length=64)


def test_roberta_style_special_tokens_and_a_missing_role(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from benchmark.data.tokenizer import encode, load_tokenizer, special_token_ids

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "cube": 4, "<mask>": 5}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    file = tmp_path / "roberta.json"
    file.write_text(tokenizer.to_str())
    loaded = load_tokenizer(file, 4)  # no padding saved: padded with the file's own <pad>
    assert encode(loaded, ["cube"])["input_ids"].tolist() == [[4, 1, 1, 1]]
    assert special_token_ids(loaded, file) == {"pad": 1, "unk": 3, "cls": 0, "sep": 2, "mask": 5}
    del vocab["<mask>"]
    (tmp_path / "no_mask.json").write_text(Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).to_str())
    with pytest.raises(DataFileError, match=r"no_mask\.json has no mask token"):
        special_token_ids(load_tokenizer(tmp_path / "no_mask.json"), tmp_path / "no_mask.json")


def test_fusebench_tokenizer_ids_unchanged(tmp_path: Path) -> None:
    from benchmark.data.tokenizer import SPECIAL_TOKENS, encode, load_tokenizer, special_token_ids, train_tokenizer

    trained = train_tokenizer(CAPTIONS * 3, 40, MAX_LENGTH)
    file = tmp_path / "tokenizer.json"
    file.write_text(trained.to_str())
    loaded = load_tokenizer(file, MAX_LENGTH)
    assert special_token_ids(loaded) == {
        role: trained.token_to_id(token) for role, token in zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS)
    }
    assert encode(loaded, CAPTIONS)["input_ids"].tolist() == encode(trained, CAPTIONS)["input_ids"].tolist()
    assert loaded.padding["pad_token"] == "[PAD]"


# -- errors -------------------------------------------------------------------------------------
def test_missing_paths_name_the_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vit.safetensors"
    with pytest.raises(ConfigError, match=rf"model\.vision\.init.*{missing}"):
        resolve_model_config({"vision": {**VISION, "init": str(missing)}, "text": TEXT})
    with pytest.raises(ConfigError, match=rf"model\.text\.init.*{tmp_path / 'bert'}"):
        resolve_model_config({"vision": VISION, "text": {**TEXT, "init": str(tmp_path / "bert")}})


def test_uncached_hub_names_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for block, key in (("vision", "hf-hub:fusebench-tests/not-cached"), ("text", "fusebench-tests/not-cached")):
        base = {"vision": VISION, "text": TEXT}
        model = {**base, block: {**base[block], "init": key}}
        with pytest.raises(ConfigError, match=rf"model\.{block}\.init.*not in the local Hugging Face cache.*OFFLINE"):
            resolve_model_config(model)


def test_hub_names_from_the_local_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vit: torch.nn.Module, bert_dir: Path
) -> None:
    """A Hub name resolves offline from the cached snapshot, whose files are hashed."""
    import huggingface_hub.constants
    from timm.models import save_for_hf

    from benchmark.data.tokenizer import export_pretrained_tokenizer

    def cache(repo: str, files: Path) -> Path:
        root = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        shutil.copytree(files, root / "snapshots" / ("0" * 40))
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text("0" * 40)
        return root / "snapshots" / ("0" * 40)

    save_for_hf(vit, str(tmp_path / "vit_hub"), safe_serialization=True)
    vit_snapshot = cache("fusebench-tests/tiny-vit", tmp_path / "vit_hub")
    bert_snapshot = cache("fusebench-tests/tiny-bert", bert_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    config = {
        "vision": {**VISION, "init": "hf-hub:fusebench-tests/tiny-vit"},
        "text": {**TEXT, "init": "fusebench-tests/tiny-bert"},
    }
    model = resolve_model_config(config, max_length=MAX_LENGTH)
    assert model["sources"]["vision"]["files"] == {p.name: sha256(p) for p in vit_snapshot.iterdir()}
    assert model["sources"]["text"]["files"] == {p.name: sha256(p) for p in bert_snapshot.iterdir()}
    assert model["sources"]["text"]["init"] == "fusebench-tests/tiny-bert"  # the name, not the snapshot
    assert model["vision"]["arch"] == "vit_tiny_patch16_224"  # rebuilt without the Hub
    ctx = context(model, export_pretrained_tokenizer("fusebench-tests/tiny-bert", MAX_LENGTH))
    x = torch.rand(2, 3, 32, 32)
    assert (ctx.vision_encoder().eval().forward_features(x) - vit.forward_features(x)).abs().max() <= 1e-6
    assert ctx.text_encoder().config.hidden_size == 32


def test_weights_that_do_not_fit_the_tower(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "wide.safetensors"
    save_file(tiny_vit(embed_dim=48).state_dict(), str(path))
    with pytest.raises(DataFileError, match=r"wide\.safetensors.*cls_token has shape \[1, 1, 48\].*\[1, 1, 32\]"):
        resolve_model_config({"vision": {**VISION, "init": str(path)}, "text": TEXT})
    # the same check guards a context whose file was replaced after resolving
    good = tmp_path / "good.safetensors"
    save_file(tiny_vit().state_dict(), str(good))
    model = resolve_model_config({"vision": {**VISION, "init": str(good)}, "text": TEXT})
    shutil.copy(path, good)
    with pytest.raises(DataFileError, match=r"good\.safetensors.*cls_token"):
        context(model).vision_encoder()


def test_text_weights_that_do_not_fit_the_encoder(tmp_path: Path, bert_dir: Path) -> None:
    """A folder that lacks a tensor, or holds one of another shape, fails when the tower is built (before any
    training), naming the folder and the first such tensor; transformers alone would initialise it randomly."""
    from benchmark.models.pretrained import build_text_tower

    def text_block(folder: Path) -> dict[str, Any]:
        return resolve_model_config({"vision": VISION, "text": {**TEXT, "init": str(folder)}})["text"]

    missing = edit_weights(bert_dir, tmp_path / "missing", lambda t: t.pop("encoder.layer.1.output.dense.weight"))
    with pytest.raises(DataFileError, match=rf"{missing}.*encoder\.layer\.1\.output\.dense\.weight is missing"):
        build_text_tower(text_block(missing), load=True)
    query = "encoder.layer.0.attention.self.query.weight"
    narrow = edit_weights(bert_dir, tmp_path / "narrow", lambda t: t.update({query: torch.zeros(32, 16)}))
    with pytest.raises(DataFileError, match=rf"{narrow}.*{query} has shape \[32, 16\].*\[32, 32\] in the model"):
        build_text_tower(text_block(narrow), load=True)
    build_text_tower(text_block(narrow), load=False)  # a checkpoint rebuild reads no weights


def test_text_checkpoint_with_a_head_and_no_pooler_loads(tmp_path: Path) -> None:
    """The rule's allowances: a masked-LM checkpoint (head tensors the encoder has no place for, no pooler,
    as RoBERTa's) loads, every encoder tensor from the folder."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    from benchmark.models.pretrained import build_text_tower

    folder = tmp_path / "mlm"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    mlm = BertForMaskedLM(config).eval()
    mlm.save_pretrained(str(folder))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(vocab=str(folder / "vocab.txt")).save_pretrained(str(folder))
    text = resolve_model_config({"vision": VISION, "text": {**TEXT, "init": str(folder)}})["text"]
    encoder = build_text_tower(text, load=True)
    want = mlm.bert.state_dict()  # BertForMaskedLM's encoder has no pooler
    got = {k: v for k, v in encoder.state_dict().items() if not k.startswith("pooler.")}
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"reg_tokens": 4}, "prefix token"), ({"class_token": False, "global_pool": "avg"}, "prefix token")],
)
def test_vision_models_without_a_single_cls_token(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    from timm.models import save_for_hf

    folder = tmp_path / "odd_vit"
    save_for_hf(tiny_vit(**overrides), str(folder), safe_serialization=True)
    with pytest.raises(ConfigError, match=rf"{folder}.*{message}"):
        resolve_model_config({"vision": {**VISION, "init": str(folder)}, "text": TEXT})


def test_non_vit_and_non_divisible_inputs(tmp_path: Path) -> None:
    from timm.models import save_for_hf

    with pytest.raises(ConfigError, match="resnet18.*not a timm VisionTransformer"):
        resolve_model_config({"vision": {**VISION, "init": "resnet18"}, "text": TEXT})
    folder = tmp_path / "odd_size"
    save_for_hf(tiny_vit(img_size=36), str(folder), safe_serialization=True)
    with pytest.raises(ConfigError, match=rf"{folder} takes 36×36 inputs in 8×8 patches"):
        resolve_model_config({"vision": {**VISION, "init": str(folder)}, "text": TEXT})


def test_context_image_size_must_be_the_towers(vit_file: Path) -> None:
    model = resolve_model_config({"vision": {**VISION, "init": str(vit_file)}, "text": TEXT})
    with pytest.raises(MethodError, match=r"image_size \(48\).*model\.vision\.image_size = 32"):
        BuildContext(model, 48, 40, MAX_LENGTH, SPECIAL).vision_encoder()


# -- the image tower's input --------------------------------------------------------------------
def test_image_tower_resizes_and_normalises_once(vit_file: Path) -> None:
    import torch.nn.functional as F

    from benchmark.models.towers import ImageTower

    vision = {**VISION, "init": str(vit_file), "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    tower = ImageTower(context(resolve_model_config({"vision": vision, "text": TEXT})))
    assert (tower.width, tower.patch_size, tower.num_patches, tower.image_size) == (32, 8, 16, 32)
    small = images(16)
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    resized = F.interpolate(small.float() / 255, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)
    assert resized.min() < 0 or resized.max() > 1  # bicubic overshoots on random pixels ...
    assert torch.equal(tower.pixels(small), (resized.clamp(0, 1) - mean) / std)  # ... clamped, as uint8 would be
    assert torch.equal(tower.pixels(images(32)), (images(32).float() / 255 - mean) / std)
    torch.manual_seed(3)
    loss = tower.mim(small)
    torch.manual_seed(3)
    tokens, patch_mask = tower.masked_tokens(small)
    assert torch.equal(loss, tower.mim_from_tokens(small, tokens[:, 1:], patch_mask))  # targets: the same pixels


# -- freezing and learning-rate multipliers -----------------------------------------------------
def test_frozen_encoder_stays_fixed(vit_file: Path) -> None:
    from benchmark.models.towers import ImageTower
    from benchmark.train.loop import OptimSettings, build_optimizer

    model = resolve_model_config({"vision": {**VISION, "init": str(vit_file), "freeze": True}, "text": TEXT})
    tower = ImageTower(context(model))
    assert not any(p.requires_grad for p in tower.vit.parameters())
    assert all(p.requires_grad for p in tower.pixel_decoder.parameters()) and tower.mask_token.requires_grad
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    settings = OptimSettings(
        steps=3, batch_size=2, lr=1e-2, weight_decay=0.05, warmup_steps=0, grad_clip=1.0, checkpoint_every=10
    )
    optimizer = build_optimizer(tower, settings)
    for step in range(3):
        optimizer.zero_grad()
        tower.mim(images(16, seed=step)).backward()
        optimizer.step()
    after = tower.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vit."))
    assert not torch.equal(before["pixel_decoder.proj.weight"], after["pixel_decoder.proj.weight"])


def test_lr_multiplier_groups_survive_the_training_state(tmp_path: Path, bert_dir: Path) -> None:
    from benchmark.models.towers import TextTower
    from benchmark.train.checkpoint import read_metadata
    from benchmark.train.loop import OptimSettings, build_optimizer, lr_factor, train

    settings = OptimSettings(
        steps=3, batch_size=2, lr=1e-3, weight_decay=0.05, warmup_steps=1, grad_clip=1.0, checkpoint_every=2
    )
    random_tower = TextTower(context({"vision": VISION, "text": TEXT}))
    assert [sorted(g) for g in build_optimizer(random_tower, settings).param_groups] == [
        sorted(["params", "weight_decay", "lr", "betas", "eps", "amsgrad", "maximize", "foreach", "capturable",
                "differentiable", "fused", "decoupled_weight_decay"])
    ] * 2  # fmt: skip

    text = {**TEXT, "init": str(bert_dir), "lr_multiplier": 0.1}
    tower = TextTower(context(resolve_model_config({"vision": VISION, "text": text}), exported_tokenizer(bert_dir)))
    groups = build_optimizer(tower, settings).param_groups
    assert [g.get("lr_scale") for g in groups] == [None, None, 0.1, 0.1]
    assert {id(p) for g in groups[2:] for p in g["params"]} == {id(p) for p in tower.bert.parameters()}
    assert {id(p) for g in groups[:2] for p in g["params"]} == {id(p) for p in tower.mlm_head.parameters()}

    ids = torch.tensor([[2, 5, 6, 8, 3, 0], [2, 7, 9, 3, 0, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}
    state = tmp_path / "state.partial.safetensors"
    train(
        tower, lambda step: {"mlm": tower.mlm(batch)}, {"mlm": 1.0}, settings, torch.device("cpu"), 0, state, "h", "t"
    )
    saved = read_metadata(state)["param_groups"]  # written after step 2 (index 1)
    base = settings.lr * lr_factor(1, settings)
    assert [g["lr"] for g in saved] == pytest.approx([base, base, base * 0.1, base * 0.1])
    assert [g.get("lr_scale") for g in saved] == [None, None, 0.1, 0.1]


def exported_tokenizer(bert_dir: Path) -> Any:
    from benchmark.data.tokenizer import export_pretrained_tokenizer

    return export_pretrained_tokenizer(str(bert_dir), MAX_LENGTH)


# -- methods built on pretrained towers ---------------------------------------------------------
@pytest.mark.parametrize("method", ["contrastive_clip", "early_concat", "cross_attention", "image_only"])
def test_baseline_on_pretrained_towers_and_checkpoint_round_trip(
    tmp_path: Path, vit_file: Path, bert_dir: Path, method: str
) -> None:
    from benchmark.data.tokenizer import encode
    from benchmark.registry import load_method
    from benchmark.train.checkpoint import load_trained, save_checkpoint

    tokenizer = exported_tokenizer(bert_dir)
    config = {"vision": {**VISION, "init": str(vit_file)}, "text": {**TEXT, "init": str(bert_dir)}, "embed_dim": 16}
    ctx = context(resolve_model_config(config, max_length=MAX_LENGTH), tokenizer)
    assert ctx.grid == 4
    torch.manual_seed(0)
    model = load_method(method)(ctx)
    batch = {"image": images(16, batch=3), "text": encode(tokenizer, CAPTIONS)}  # 16 px data, a 32 px tower
    losses = model.pretrain_losses(batch)
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total) and any(p.grad is not None for p in model.image.vit.parameters())

    checkpoint = tmp_path / "model.safetensors"
    save_checkpoint(checkpoint, model, {"method": method, "context": ctx.to_json(), "overrides": {}})
    assert "load_pretrained" not in ctx.to_json() and not BuildContext.from_json(ctx.to_json()).load_pretrained
    shutil.move(str(vit_file), str(tmp_path / "moved.safetensors"))  # a rebuild never reads the sources
    shutil.move(str(bert_dir), str(tmp_path / "moved_bert"))
    rebuilt, _ = load_trained(checkpoint, torch.device("cpu"))
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.manual_seed(5)
        want = model.pretrain_losses(batch)
        torch.manual_seed(5)
        got = rebuilt.pretrain_losses(batch)
        assert {k: v.item() for k, v in got.items()} == {k: v.item() for k, v in want.items()}
        assert torch.equal(rebuilt.image.tokens(batch["image"]), model.image.tokens(batch["image"]))
