"""`python -m uvicorn app.main:app --host 0.0.0.0 --port 8000`, the start command the platform's
deployment page gives, run from the repository root. `ml-worker serve` stays the primary command:
it builds this same app (settings from the environment and `.env`, lifespan, compute pool) and
adds uvicorn's header and body deadlines, the open-files limit and a clean exit on SIGTERM.
"""

from entrypoints.http.app import create_app_from_env

app = create_app_from_env()
