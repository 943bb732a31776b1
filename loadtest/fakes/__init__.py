"""Protocol-level fakes of OpenAI and Databricks Vector Search, for tests and load runs:
the real `openai` and `databricks-vectorsearch` clients talk to them unawares."""

from loadtest.fakes.databricks_server import SAMPLE_DATASET, FakeDatabricksServer, load_rows
from loadtest.fakes.openai_server import FakeOpenAIServer, hash_embedding, split_tokens
from loadtest.fakes.runner import ServerThread
from loadtest.fakes.scripting import Citation, FakeServer, Step, ToolCallStep

__all__ = [
    "SAMPLE_DATASET",
    "Citation",
    "FakeDatabricksServer",
    "FakeOpenAIServer",
    "FakeServer",
    "ServerThread",
    "Step",
    "ToolCallStep",
    "hash_embedding",
    "load_rows",
    "split_tokens",
]
