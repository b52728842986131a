"""Structural checks behind .ci/deploy-checks (run with the tools venv's Python: needs PyYAML).

    deploy_checks.py dockerfile ROOT              the Dockerfile and .dockerignore agree, image rules
    deploy_checks.py compose CONFIG.json          `docker compose config --format json` output (ml profile)
    deploy_checks.py compose-raw ROOT             docker-compose.yml read directly (no compose binary)
    deploy_checks.py manifests SET FILE.yaml      rendered chart for value set SET (ci/SET-values.yaml)
    deploy_checks.py expect-error FILE VALUES     the expected message of a value set that must fail

Each subcommand prints what it checked and exits 1 with the reasons on any failure.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

IMAGE_UID = 10001
# Liveness checks no dependency (an outage must never restart the worker); readiness does.
LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health"


class Failures:
    def __init__(self, what: str) -> None:
        self.what = what
        self.errors: list[str] = []
        self.count = 0

    def check(self, ok: bool, message: str) -> None:
        self.count += 1
        if not ok:
            self.errors.append(message)

    def finish(self) -> int:
        if self.errors:
            print(f"{self.what}: {len(self.errors)} of {self.count} assertions failed:")
            for e in self.errors:
                print(f"  - {e}")
            return 1
        print(f"{self.what}: {self.count} assertions ok")
        return 0


# ---------------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            instr, _, args = buf.strip().partition(" ")
            out.append((instr.upper(), args.strip()))
        buf = ""
    return out


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore semantics (last match wins, `!` re-includes), for plain paths."""
    excluded = False
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip().lstrip("/").rstrip("/")
        if not p:
            continue
        if _ignore_match(p, path):
            excluded = not neg
    return excluded


def _ignore_match(pattern: str, path: str) -> bool:
    # A pattern matches the path itself or any parent directory of it.
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if pattern.startswith("**/"):
            sub = pattern[3:]
            if any(fnmatch.fnmatchcase("/".join(parts[j:i]), sub) for j in range(i)):
                return True
        elif fnmatch.fnmatchcase(prefix, pattern) and prefix.count("/") == pattern.count("/"):
            return True
    return False


def check_dockerfile(root: Path) -> int:
    f = Failures("Dockerfile")
    text = (root / "Dockerfile").read_text()
    ins = dockerfile_instructions(text)
    ignore_lines = [
        ln.strip()
        for ln in (root / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]

    stages = [i for i, (k, _) in enumerate(ins) if k == "FROM"]
    f.check(len(stages) >= 2, "multi-stage build expected (at least two FROM)")
    final = ins[stages[-1] :] if stages else ins

    # COPY sources (from the build context) exist and are not excluded by .dockerignore.
    for k, args in ins:
        if k not in ("COPY", "ADD"):
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        if "--from=" in args:
            continue
        f.check(k == "COPY", f"use COPY, not ADD: {args}")
        for src in words[:-1]:
            p = root / src
            f.check(p.exists(), f"COPY source {src!r} does not exist in the build context")
            f.check(
                not dockerignore_excludes(ignore_lines, src.rstrip("/")),
                f"COPY source {src!r} is excluded by .dockerignore",
            )
    # The context must not carry the developer's state.
    for path in (".git", ".venv", "tests", ".ci", "helm", "src/ml_worker.egg-info", "src/x/__pycache__"):
        f.check(dockerignore_excludes(ignore_lines, path), f".dockerignore should exclude {path}")

    # Final stage: non-root numeric USER, HEALTHCHECK on /health/live, exec-form CMD, no build tools.
    users = [a for k, a in final if k == "USER"]
    f.check(bool(users), "final stage sets no USER")
    if users:
        uid = users[-1].split(":")[0]
        f.check(uid.isdigit() and int(uid) != 0, f"USER should be a numeric non-root uid, got {users[-1]!r}")
        f.check(uid == str(IMAGE_UID), f"USER uid {uid} != {IMAGE_UID} (the chart's runAsUser)")
    hc = [a for k, a in final if k == "HEALTHCHECK"]
    f.check(
        bool(hc) and f"{LIVENESS_PATH}'" in hc[-1],
        f"final stage needs a HEALTHCHECK on {LIVENESS_PATH} (liveness: a store outage must not fail it)",
    )
    cmds = [a for k, a in final if k in ("CMD", "ENTRYPOINT")]
    f.check(bool(cmds), "final stage has no CMD/ENTRYPOINT")
    for c in cmds:
        f.check(c.startswith("["), f"CMD/ENTRYPOINT should be exec form (signals reach the app): {c}")
    runs = " ".join(a for k, a in final if k == "RUN")
    for tool in ("build-essential", "gcc", "g++", "make ", "git ", "curl ", "wget "):
        f.check(tool not in runs + " ", f"final stage installs build/network tool {tool.strip()!r}")
    f.check("rm -rf /var/lib/apt/lists" in runs or "apt-get" not in runs, "apt lists must be removed")
    f.check("pip install" not in runs, "final stage must not pip install (build stage does)")
    env_text = " ".join(a for k, a in final if k == "ENV")
    m = re.search(r"ML_WORKER_PORT=(\d+)", env_text)
    f.check(m is not None, "final stage should set ML_WORKER_PORT")
    expose = [a for k, a in final if k == "EXPOSE"]
    if m:
        f.check(any(m.group(1) in e.split() for e in expose), "EXPOSE should match ML_WORKER_PORT")
    f.check("TMPDIR=/tmp" in env_text, "final stage should set TMPDIR=/tmp (read-only root filesystem)")
    stop = [a for k, a in final if k == "STOPSIGNAL"]
    f.check(not stop or stop[-1] == "SIGTERM", "STOPSIGNAL should be SIGTERM")
    return f.finish()


# ---------------------------------------------------------------------------------------------- Compose

COMPOSE_ENV = ("DATABASE_URL", "ML_WORKER_JOB_STORE", "ML_WORKER_API_KEY", "REDIS_URL", "ML_WORKER_PORT")


def _env_dict(env: Any) -> dict[str, Any]:
    if isinstance(env, dict):
        return env
    out: dict[str, Any] = {}
    for item in env or []:
        k, sep, v = str(item).partition("=")
        out[k] = v if sep else None
    return out


def check_compose(cfg: dict[str, Any], source: str) -> int:
    f = Failures(f"docker-compose.yml ({source})")
    services = cfg.get("services") or {}
    f.check({"ml-worker", "postgres", "redis"} <= set(services), f"services: {sorted(services)}")
    w = services.get("ml-worker") or {}
    f.check(w.get("profiles") == ["ml"], "ml-worker must be under the `ml` profile")
    f.check("ml" in (services.get("redis") or {}).get("profiles", []), "redis belongs to the `ml` profile")
    env = _env_dict(w.get("environment"))
    for name in COMPOSE_ENV:
        f.check(name in env, f"ml-worker environment lacks {name}")
    f.check(
        env.get("ML_WORKER_API_KEY") in (None, ""), "ML_WORKER_API_KEY must stay optional (unset by default)"
    )
    store = str(env.get("ML_WORKER_JOB_STORE"))
    if source == "raw":  # before interpolation: ${ML_WORKER_JOB_STORE:-redis}
        store = re.sub(r"^\$\{ML_WORKER_JOB_STORE:-(\w+)\}$", r"\1", store)
    f.check(store in ("memory", "redis", "postgres"), f"ML_WORKER_JOB_STORE value {store!r}")
    f.check(
        str(env.get("DATABASE_URL", "")).startswith("postgresql://"), "DATABASE_URL should be postgresql://"
    )
    port = str(env.get("ML_WORKER_PORT", ""))
    hc = w.get("healthcheck") or {}
    test = hc.get("test")
    test_s = " ".join(test) if isinstance(test, list) else str(test)
    f.check(
        bool(test) and f":{port}{READINESS_PATH}'" in test_s,
        f"ml-worker healthcheck should GET :{port}{READINESS_PATH} (readiness; Compose never restarts on it)",
    )
    targets = []
    for p in w.get("ports") or []:
        targets.append(str(p.get("target")) if isinstance(p, dict) else str(p).rsplit(":", 1)[-1])
    f.check(port in targets, f"published container port {targets} should be ML_WORKER_PORT {port}")
    deps = w.get("depends_on") or {}
    for d in ("postgres", "redis"):
        cond = deps.get(d, {}).get("condition") if isinstance(deps, dict) else None
        f.check(cond == "service_healthy", f"ml-worker should wait for {d} to be healthy")
        f.check(bool((services.get(d) or {}).get("healthcheck")), f"{d} needs a healthcheck")
    # The platform's page reads the logs with `docker logs kaireon-ml-worker`.
    f.check(w.get("container_name") == "kaireon-ml-worker", "ml-worker's container_name kaireon-ml-worker")
    f.check(w.get("read_only") is True, "ml-worker should run with read_only: true like the chart")
    f.check(any(str(t).split(":")[0] == "/tmp" for t in w.get("tmpfs") or []), "ml-worker needs tmpfs /tmp")
    # Docker's 64 MB /dev/shm would send all but small task data through /tmp.
    f.check(bool(w.get("shm_size")), "ml-worker needs shm_size (task data goes through /dev/shm)")
    f.check(bool((w.get("build") or {}).get("context")), "ml-worker should build from the Dockerfile")
    return f.finish()


# ---------------------------------------------------------------------------------------------- Manifests


def _by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def _env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def _secret_ref(env: dict[str, dict[str, Any]], name: str) -> tuple[str, str] | None:
    e = env.get(name)
    if not e or "valueFrom" not in e:
        return None
    ref = e["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "ml-worker-dashboard.json"


def check_manifests(set_name: str, path: Path) -> int:
    f = Failures(f"manifests[{set_name}]")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = _by_kind(docs)
    # The Grafana dashboard's ConfigMap (metrics.grafanaDashboard) is checked apart from the platform's.
    maps = kinds.get("ConfigMap", [])
    kinds["ConfigMap/dashboard"] = [m for m in maps if DASHBOARD.name in (m.get("data") or {})]
    kinds["ConfigMap"] = [m for m in maps if m not in kinds["ConfigMap/dashboard"]]
    if set_name == "default":
        f.check(docs == [], f"default values (enabled=false) must render nothing, got {sorted(kinds)}")
        return f.finish()

    for k in ("Deployment", "Service", "ConfigMap"):
        f.check(len(kinds.get(k, [])) == 1, f"expected one {k}, got {len(kinds.get(k, []))}")
    f.check(len(kinds.get("ServiceAccount", [])) <= 1, "at most one ServiceAccount")
    if f.errors:
        return f.finish()
    dep = kinds["Deployment"][0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = pod["containers"][0]
    env = _env_of(c)
    names = {d["metadata"]["name"] for d in docs}

    # Resources, as the platform documents them (defaults unless the set overrides them).
    res = c.get("resources", {})
    f.check(res.get("requests", {}).get("cpu") is not None, "resources.requests.cpu set")
    f.check(
        res.get("limits", {}).get("cpu") is not None, "resources.limits.cpu set (the worker sizes from it)"
    )
    f.check(res.get("limits", {}).get("memory") is not None, "resources.limits.memory set")

    # Port wiring: ML_WORKER_PORT == containerPort; probes and Service target that port by name.
    port = c["ports"][0]
    f.check(port["name"] == "http", "container port named http")
    f.check(env.get("ML_WORKER_PORT", {}).get("value") == str(port["containerPort"]), "ML_WORKER_PORT = port")
    svc = kinds["Service"][0]
    f.check(svc["spec"]["ports"][0]["targetPort"] == "http", "Service targets the http port")
    f.check(svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items(), "selector")
    f.check(
        spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), "labels"
    )
    probes = {"livenessProbe": LIVENESS_PATH, "readinessProbe": READINESS_PATH, "startupProbe": LIVENESS_PATH}
    for probe, path in probes.items():
        p = c.get(probe)
        if p is None and probe == "startupProbe":
            continue  # optional
        f.check(p is not None and p["httpGet"]["path"] == path, f"{probe} on GET {path}")
        if p:
            f.check(p["httpGet"]["port"] == "http", f"{probe} on the http port")

    # Security: non-root (same uid as the image), read-only root, writable /tmp.
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    f.check(psc.get("runAsNonRoot") is True, "runAsNonRoot")
    f.check(psc.get("runAsUser") == IMAGE_UID, f"runAsUser {IMAGE_UID} (the image's USER)")
    f.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    f.check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    f.check("ALL" in csc.get("capabilities", {}).get("drop", []), "drop ALL capabilities")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    f.check("/tmp" in mounts and "emptyDir" in vols.get(mounts.get("/tmp", ""), {}), "emptyDir at /tmp")
    f.check(env.get("TMPDIR", {}).get("value") == "/tmp", "TMPDIR=/tmp")
    if "ServiceAccount" in kinds:
        f.check(pod.get("serviceAccountName") == kinds["ServiceAccount"][0]["metadata"]["name"], "SA wired")
    f.check(pod.get("automountServiceAccountToken") is False, "no API token mounted")
    f.check(pod.get("enableServiceLinks") is False, "enableServiceLinks false (ML_WORKER_PORT=tcp://...)")

    # Prometheus: annotations or a ServiceMonitor.
    ann = spec["template"]["metadata"].get("annotations", {})
    f.check(
        ann.get("prometheus.io/scrape") == "true" or "ServiceMonitor" in kinds,
        "scrape annotations or ServiceMonitor",
    )

    # The ConfigMap publishes ML_WORKER_URL pointing at the Service.
    cm = kinds["ConfigMap"][0]
    url = cm["data"].get("ML_WORKER_URL", "")
    svc_name = svc["metadata"]["name"]
    f.check(
        url == f"http://{svc_name}.{svc['metadata']['namespace']}.svc:{svc['spec']['ports'][0]['port']}",
        f"ML_WORKER_URL {url!r} should address Service {svc_name}",
    )

    # Secret references point at a Secret that is rendered, or at the user's existing one.
    secrets = {s["metadata"]["name"]: s for s in kinds.get("Secret", [])}
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] in secrets:
            data = secrets[ref["name"]].get("data", {})
            f.check(ref["key"] in data, f"{e['name']}: key {ref['key']} missing in Secret {ref['name']}")

    store = env.get("ML_WORKER_JOB_STORE", {}).get("value")
    replicas = spec.get("replicas")
    hpa = kinds.get("HorizontalPodAutoscaler", [])
    if store == "memory":
        f.check(replicas == 1 and not hpa, "memory job store only with exactly one replica and no HPA")
    if store == "redis":
        f.check("REDIS_URL" in env, "redis job store needs REDIS_URL")

    expectations = SET_EXPECTATIONS.get(set_name)
    f.check(expectations is not None, f"no expectations written for value set {set_name!r}")
    if expectations:
        expectations(f, kinds, dep, env, names)
    return f.finish()


def _expect_enabled(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    f.check(dep["spec"]["replicas"] == 1, "replicas 1 by default")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    r = c["resources"]
    f.check(
        r == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2000m", "memory": "4Gi"}},
        f"documented default resources, got {r}",
    )
    f.check(c["image"].endswith(":latest"), "image tag latest by default")
    f.check(env["ML_WORKER_JOB_STORE"]["value"] == "memory", "memory store by default")
    f.check("ML_WORKER_API_KEY" not in env and "DATABASE_URL" not in env, "no secrets by default")
    f.check("Secret" not in kinds, "no Secret rendered when nothing secret is given")
    for k in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor"):
        f.check(k not in kinds, f"{k} off by default")
    f.check(not kinds["ConfigMap/dashboard"], "Grafana dashboard ConfigMap off by default")
    pod = dep["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    shm = {v["name"]: v for v in pod["volumes"]}.get(mounts.get("/dev/shm", ""), {}).get("emptyDir")
    f.check(shm == {"medium": "Memory", "sizeLimit": "1Gi"}, f"a 1Gi Memory emptyDir at /dev/shm, got {shm}")


def _expect_redis_ha(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    f.check(dep["spec"]["replicas"] == 3, "replicas 3")
    f.check(env["ML_WORKER_JOB_STORE"]["value"] == "redis", "redis store")
    f.check(_secret_ref(env, "REDIS_URL") is not None, "REDIS_URL from a Secret")
    f.check(len(kinds.get("PodDisruptionBudget", [])) == 1, "PDB rendered")


def _expect_api_key_secret(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    f.check(_secret_ref(env, "ML_WORKER_API_KEY") == ("platform-ml-worker", "token"), "API key from existing")
    f.check("Secret" not in kinds, "no chart Secret when the key comes from an existing Secret")


def _expect_inline_secrets(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    own = kinds.get("Secret", [{}])[0].get("metadata", {}).get("name")
    f.check(_secret_ref(env, "ML_WORKER_API_KEY") == (own, "api-key"), "inline API key via chart Secret")
    f.check(_secret_ref(env, "DATABASE_URL") == (own, "database-url"), "inline DATABASE_URL via chart Secret")
    f.check(_secret_ref(env, "ML_WORKER_JOB_STORE_URL") == (own, "job-store-url"), "job store URL")
    f.check(env["ML_WORKER_JOB_STORE"]["value"] == "postgres", "postgres store")
    f.check(env.get("ML_WORKER_WORKERS", {}).get("value") == "3", "config.workers exported")
    f.check(env.get("ML_WORKER_MAX_ROWS", {}).get("value") == "2000000", "config.maxRows exported as an int")
    pod = dep["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    shm = vols.get(mounts.get("/dev/shm", ""), {}).get("emptyDir", {})
    f.check(shm == {"medium": "Memory", "sizeLimit": "256Mi"}, f"shmVolume at /dev/shm, got {shm}")
    tmp = vols.get(mounts.get("/tmp", ""), {}).get("emptyDir", {})
    f.check(tmp == {"medium": "Memory", "sizeLimit": "512Mi"}, f"tmpVolume settings, got {tmp}")


def _expect_hpa(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    f.check("replicas" not in dep["spec"], "no spec.replicas when the HPA owns it")
    hpa = kinds.get("HorizontalPodAutoscaler", [])
    f.check(len(hpa) == 1, "HPA rendered")
    if hpa:
        tgt = hpa[0]["spec"]["scaleTargetRef"]
        f.check(
            tgt["name"] == dep["metadata"]["name"] and tgt["kind"] == "Deployment", "HPA targets Deployment"
        )
    sm = kinds.get("ServiceMonitor", [])
    f.check(len(sm) == 1, "ServiceMonitor rendered")
    if sm:
        ep = sm[0]["spec"]["endpoints"][0]
        f.check(ep["port"] == "http" and ep["path"] == "/metrics", "ServiceMonitor scrapes http /metrics")
        f.check(sm[0]["metadata"]["labels"].get("release") == "prometheus", "ServiceMonitor extra labels")
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    f.check("prometheus.io/scrape" not in ann, "no scrape annotations when metrics.podAnnotations=false")
    f.check(len(kinds.get("PodDisruptionBudget", [])) == 1, "PDB rendered")
    dashboards = kinds["ConfigMap/dashboard"]
    f.check(len(dashboards) == 1, "Grafana dashboard ConfigMap rendered")
    if dashboards:
        f.check(dashboards[0]["metadata"]["labels"].get("grafana_dashboard") == "1", "the sidecar's label")
        shipped = json.loads(dashboards[0]["data"][DASHBOARD.name])
        f.check(shipped == json.loads(DASHBOARD.read_text()), "deploy/grafana's dashboard")


def _expect_existing_db(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    pod = dep["spec"]["template"]["spec"]
    f.check("ServiceAccount" not in kinds, "serviceAccount.create=false renders no ServiceAccount")
    f.check(pod.get("serviceAccountName") == "platform-workloads", "existing ServiceAccount used")
    f.check(kinds["ConfigMap"][0]["metadata"]["name"] == "ml-worker-url", "platformConfigMap.name honoured")
    f.check(_secret_ref(env, "DATABASE_URL") == ("platform-db", "url"), "DATABASE_URL from existing Secret")
    f.check(env["ML_WORKER_JOB_STORE"]["value"] == "postgres", "postgres store")
    f.check("ML_WORKER_JOB_STORE_URL" not in env, "job store URL defaults to DATABASE_URL (not set)")
    f.check("Secret" not in kinds, "no chart Secret")
    mounts = [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]]
    f.check("/dev/shm" not in mounts, "shmVolume.enabled=false mounts nothing at /dev/shm")


def _expect_platform_name(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    svc = kinds["Service"][0]
    f.check(svc["metadata"]["name"] == "kaireon-ml-worker", "fullnameOverride names the Service")
    f.check(svc["spec"]["ports"][0]["port"] == 8000, "the platform's page addresses port 8000")
    f.check(dep["metadata"]["name"] == "kaireon-ml-worker", "fullnameOverride names the Deployment")


def _expect_dask(f: Failures, kinds: Any, dep: Any, env: Any, names: Any) -> None:
    f.check(
        env.get("ML_WORKER_DASK_SCHEDULER", {}).get("value") == "tcp://dask-scheduler.analytics:8786",
        "mlWorker.dask.schedulerAddress is ML_WORKER_DASK_SCHEDULER",
    )
    f.check(env.get("ML_WORKER_DASK_MIN_ROWS", {}).get("value") == "1000000", "minRows as an integer")
    f.check("ML_WORKER_DASK_MAX_ROWS" not in env, "an unset maxRows leaves the worker's default")


SET_EXPECTATIONS = {
    "dask": _expect_dask,
    "enabled": _expect_enabled,
    "platform-name": _expect_platform_name,
    "redis-ha": _expect_redis_ha,
    "api-key-secret": _expect_api_key_secret,
    "inline-secrets": _expect_inline_secrets,
    "hpa": _expect_hpa,
    "existing-db-secret": _expect_existing_db,
}


def expected_error(values_file: Path) -> str:
    for line in values_file.read_text().splitlines():
        m = re.match(r"#\s*expect-error:\s*(.+)", line)
        if m:
            return m.group(1).strip()
    raise SystemExit(f"{values_file}: no '# expect-error: <text>' line")


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "dockerfile":
        return check_dockerfile(Path(argv[2]))
    if cmd == "compose":
        return check_compose(json.loads(Path(argv[2]).read_text()), "docker compose config")
    if cmd == "compose-raw":
        return check_compose(yaml.safe_load((Path(argv[2]) / "docker-compose.yml").read_text()), "raw")
    if cmd == "manifests":
        return check_manifests(argv[2], Path(argv[3]))
    if cmd == "expect-error":
        print(expected_error(Path(argv[2])))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
