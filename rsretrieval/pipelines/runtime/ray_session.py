"""Which Ray a run uses, and when it starts.

A run attaches at once to a cluster it is told of (``ray.address``, ``$RAY_ADDRESS``, or the live
cluster of the last ``ray start`` on this machine), so an unreachable one fails in seconds. A run
that would start its own local instance may start it only when a stage first needs Ray
(:func:`ensure_ray`): a rerun whose stages are all cached never pays Ray's start-up (~6 s on 2 cores).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rsretrieval.config import RayConfig

log = logging.getLogger(__name__)
_PENDING: list[RayConfig] = []  # the config of a local instance whose start was deferred


def ensure_ray() -> None:
    """Start Ray now if this process has not: the deferred local instance, else Ray's defaults as
    :func:`init_ray` resolves them."""
    import ray

    if ray.is_initialized():
        return
    init_ray(_PENDING.pop() if _PENDING else RayConfig())


def init_ray(cfg: RayConfig, lazy_local: bool = False) -> None:
    """Connect to the configured cluster / $RAY_ADDRESS / the live cluster of the last ``ray start`` on
    this machine, saying which; or start a local instance (``lazy_local``: when a stage first needs Ray,
    :func:`ensure_ray`). A cluster that cannot be reached is an error within seconds (Ray itself would
    wait for it forever)."""
    import ray

    from rsretrieval.pipelines.runtime.preflight import ConfigError

    if ray.is_initialized():
        return
    from rsretrieval import console

    # worker output stays in Ray's session logs unless asked for; with our logging set up, Ray must not
    # put its own console handler back
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": cfg.log_to_driver,
                              "configure_logging": not console.active()}
    address, source = (cfg.address, "ray.address") if cfg.address else (os.environ.get("RAY_ADDRESS"), "$RAY_ADDRESS")
    if not address:
        last = _last_started_cluster()
        if last and _reachable(last):
            address, source = last, "the running cluster of the last `ray start` on this machine"
        elif last:
            log.warning("the cluster of the last `ray start` on this machine (%s) is gone; starting a local Ray "
                        "instance instead", last)
    if address:
        if address not in ("auto", "local") and "://" not in address and not _reachable(address):
            raise ConfigError(f"Ray cluster {address} ({source}) cannot be reached: start it (`ray start --head`), "
                              "fix the address, or unset it to run on a local Ray instance")
        log.info("Ray: attaching to %s (%s)", address, source)
        ray.init(address=address, **kwargs)
    elif lazy_local:
        _PENDING[:] = [cfg]
        return
    else:
        log.info("Ray: starting a local instance (%s CPUs)", cfg.num_cpus or "all")
        ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=False, **kwargs)
    ray.data.DataContext.get_current().enable_progress_bars = False
    if console.active():
        console.route_library_loggers()  # ray.data configures its console handler on import


def _last_started_cluster() -> str | None:
    """The GCS address Ray's ``ray.init()`` would follow (written by the last ``ray start``), if any."""
    try:
        from ray._private.services import find_bootstrap_address

        return find_bootstrap_address(None)
    except Exception:  # a private Ray API: without it, behave as Ray does
        return None


def _reachable(address: str, timeout_s: float = 3.0) -> bool:
    """A TCP connection to ``host:port`` opens within ``timeout_s``."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout_s).close()
        return True
    except (OSError, ValueError):
        return False
