"""Payloads of the tools a turn can use: company search and web search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MAX_COMPANIES = 10


class Company(BaseModel):
    name: str
    description: str = ""
    industry: str = ""
    location: str = ""
    contact: str = ""
    capabilities: str = ""
    score: float = 0.0
    sample: bool = False  # a row of the shipped sample dataset, not real data


class Citation(BaseModel):
    index: int
    title: str
    url: str
    snippet: str = ""


class SearchCompaniesInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    location: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=5, ge=1, le=MAX_COMPANIES)


class CompanyResults(BaseModel):
    tool: Literal["company_search"] = "company_search"
    companies: list[Company] = Field(default_factory=list)
    source: Literal["databricks", "postgres"] = "postgres"
    sample: bool = False  # some of the companies are sample data (each says which)
    mode: str = ""  # how it searched, e.g. "hybrid", "full-text only (no embeddings)"
    embedder: str | None = None  # whose vectors the "by meaning" half compared
    unavailable: bool = False
    message: str = ""


class SearchWebInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    # Whose turn it is, and the search's step in the usage ledger (none: not recorded).
    turn_id: str = ""
    session_id: str = ""
    user_id: str = ""
    step: str = Field("search:web", max_length=64)


class WebResults(BaseModel):
    tool: Literal["web_search"] = "web_search"
    answer: str = ""
    citations: list[Citation] = Field(default_factory=list)
    unavailable: bool = False
    message: str = ""
