"""Serve the gateway for ``bench/gateway.sh``: a fresh data dir, tracing and limits on.

Usage: python bench/gateway_server.py --port P --upstream http://127.0.0.1:U --data-dir D
Writes the key the load generator uses to D/bench.key (a key with RPM, TPM, concurrency and
budget limits, so every request goes through the limiter), then serves with one uvicorn worker.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
import yaml

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import load_settings

LIMITS = {"rpm": 10**9, "tpm": 10**12, "max_concurrent": 10_000, "budget_usd_day": 10**6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    config = args.data_dir / "pilothouse.yaml"
    deployment = {"provider": "openai", "model": "fake-model", "base_url": args.upstream + "/v1"}
    config.write_text(yaml.safe_dump({"models": {"fake-model": {"deployments": [deployment]}}}))
    settings = load_settings(
        {
            "data_dir": str(args.data_dir),
            "port": args.port,
            "gateway_config": str(config),
            "admin_password": "bench-password",
            "admin_key": "ph-bench-admin-0123456789",
            "log_level": "warning",
            "tracing_writer_process": True,
        }
    )
    runtime = Runtime(settings)
    runtime.migrate()
    runtime.bootstrap()
    key, _ = runtime.keys.create(1, "bench", ["gateway"], limits=LIMITS)
    (args.data_dir / "bench.key").write_text(key)
    app = create_app(runtime)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http=app.protocol(),  # as `pilothouse serve`
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
