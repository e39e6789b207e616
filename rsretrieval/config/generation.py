"""Configs of generation: the simulated VLM (offline stand-in) and the Gemini backend."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from rsretrieval.config.base import StrictModel, output_path


class SimulatedVLMConfig(StrictModel):
    """The offline stand-in for Gemini on synthrs images: the ground-truth graph, degraded (simulated)."""

    drop_small: float = Field(0.5, ge=0, le=1, description="Probability that an object type whose objects are all small is missed")
    count_noise: float = Field(0.3, ge=0, le=1, description="Probability that a count above one is off by 1..count_max_error")
    count_max_error: int = Field(2, ge=1, description="Largest count error")
    many_threshold: int = Field(15, ge=2, description="Counts above this are reported as -1 ('too many') with probability 0.5")
    colour_confusion: float = Field(0.1, ge=0, le=1, description="Probability that an object's colour is named as a similar colour")
    drop_relation: float = Field(0.2, ge=0, le=1, description="Probability that a relation between two objects is missed")


class GenerationConfig(StrictModel):
    """How fine-grained captions, graphs and text scenes are generated, throttled and paid for."""

    backend: Literal["offline", "gemini"] = Field(
        "offline", description="offline = heuristic/simulated generators (no key, labelled); gemini = the Gemini API")
    simulated_vlm: SimulatedVLMConfig = Field(default_factory=SimulatedVLMConfig,
                                              description="Offline image graphs on synthrs: how the ground truth is degraded")
    model: str = Field("gemini-2.5-flash", description="Gemini model name")
    base_url: str | None = Field(None, description="API endpoint override (a proxy, or the fake server in tests)")
    api_version: str = Field("v1beta", description="REST API version of the endpoint")
    store_dir: Path | None = Field(None, description="Append-only response store; default <cache_dir>/generation, or with base_url set "
                                     "<cache_dir>/generation@<host_port> (a rehearsal against the fake server never fills the real store)")
    requests_per_minute: int = Field(600, ge=1, description="Cluster-wide request quota (shared limiter)")
    tokens_per_minute: int = Field(4_000_000, ge=1, description="Cluster-wide token quota (input + estimated output)")
    actors: int = Field(1, ge=1, description="Generation actors (Ray Data actor pool size)")
    cpus_per_actor: float = Field(0.25, gt=0, description="CPUs reserved per generation actor (the work is waiting on the network)")
    concurrency_per_actor: int = Field(8, ge=1, description="Requests in flight per actor")
    batch_size: int = Field(16, ge=1, description="Inputs per map_batches batch")
    max_attempts: int = Field(6, ge=1, description="HTTP attempts per request (429/408/5xx/timeouts are retried)")
    max_reasks: int = Field(2, ge=0, description="Re-asks when an answer fails validation, then recorded as failed")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout")
    backoff_base_s: float = Field(1.0, gt=0, description="First retry delay (exponential, full jitter) without a server hint")
    backoff_max_s: float = Field(60.0, gt=0, description="Largest retry delay")
    retry_failed: bool = Field(False, description="Re-request inputs whose earlier answers failed (they were paid once)")
    estimated_output_tokens: int = Field(400, description="Output tokens assumed per request by the limiter and dry runs")
    price_input_per_million: float = Field(0.30, description="USD per 1M input tokens (check current Gemini pricing)")
    price_output_per_million: float = Field(2.50, description="USD per 1M output tokens (check current Gemini pricing)")
    mode: Literal["online", "batch"] = Field(
        "online", description="online = one request per input; batch = Gemini Batch API: 50% price, answers within 24 h")
    batch_poll_s: float = Field(30.0, gt=0, description="Seconds between polls of a running Gemini batch job")
    batch_price_factor: float = Field(0.5, ge=0, description="Multiplies the token prices for batch runs")
    seed: int = Field(0, description="Seed of retry jitter and of the offline simulated VLM")

    _outputs = field_validator("store_dir", mode="before")(lambda cls, v: output_path(v))

    def cost_usd(self, tokens_in: int, tokens_out: int, batch: bool = False) -> float:
        """USD for these tokens; ``batch`` applies ``batch_price_factor`` (Batch API pricing)."""
        cost = tokens_in / 1e6 * self.price_input_per_million + tokens_out / 1e6 * self.price_output_per_million
        return cost * self.batch_price_factor if batch else cost
