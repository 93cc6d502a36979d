"""Consistency checks of the operator kit that no schema expresses (run by deploy/check.sh).

    python deploy/check.py k8s [RENDERED.yaml]   deploy/k8s: files vs kustomization, and the
                                                rules every pod must follow (see check_k8s)
    python deploy/check.py compose              deploy/compose.yaml and the registry config,
                                                incl. the notifications section vs the tests'
    python deploy/check.py dockerfile CONTEXT   the Dockerfile's final stage, and whether the
                                                build context CONTEXT (made by check.sh from
                                                .dockerignore) holds what the build reads
    python deploy/check.py grafana              deploy/grafana/hookline.json queries only
                                                metrics hookline exports, and every metric is
                                                documented in docs/operations.md

Every rule is stated where it is checked. Exits non-zero with every violation listed.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
IMAGE = "ghcr.io/hookline/hookline"
UID = 10001
ROLE_OF = {"hookline-api": "api", "hookline-ingest": "ingest", "hookline-dispatcher": "dispatcher"}

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def known_env() -> set[str]:
    """Every HOOKLINE_* variable hookline reads: the `env = "…"` of its clap arguments."""
    names: set[str] = set()
    for path in (ROOT / "src").rglob("*.rs"):
        names.update(re.findall(r'env\s*=\s*"(HOOKLINE_[A-Z0-9_]+)"', path.read_text()))
    if len(names) < 10:
        sys.exit(f"found only {len(names)} HOOKLINE_* variables in src/: has the code changed shape?")
    return names


def check_env_names(where: str, names, known: set[str]) -> None:
    # A misspelt variable is silently ignored by hookline, so it is an error here.
    for name in names:
        if name.startswith("HOOKLINE_") and name not in known:
            problem(where, f"{name} is not a variable hookline reads (typo?)")


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return int(m.group(1)) * units[m.group(2)]


def quantity(text) -> float:
    """A Kubernetes CPU or memory quantity as a number (cores or bytes)."""
    text = str(text)
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def listen_port(env: dict, var: str) -> int | None:
    addr = env.get(var, {}).get("value", "")
    return port_of(addr) if ":" in addr else None


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# --- Kubernetes ----------------------------------------------------------------------


def check_k8s(rendered: Path | None) -> None:
    known = known_env()
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = list(kustomization.get("resources", []))
    # Every manifest is applied: each *.yaml but the kustomization itself and the
    # *.example.yaml templates (the Secret) is listed, and everything listed exists.
    present = sorted(
        p.name for p in K8S.glob("*.yaml")
        if p.name != "kustomization.yaml" and not p.name.endswith(".example.yaml")
    )
    for name in present:
        if name not in listed:
            problem("kustomization.yaml", f"{name} is not listed in resources")
    for name in listed:
        if not (K8S / name).is_file():
            problem("kustomization.yaml", f"lists {name}, which does not exist")
        if name.endswith(".example.yaml"):
            problem("kustomization.yaml", f"lists the template {name}: it would overwrite real values")
    env_files = [e for g in kustomization.get("configMapGenerator", []) for e in g.get("envs", [])]
    for name in env_files:
        if not (K8S / name).is_file():
            problem("kustomization.yaml", f"configMapGenerator reads {name}, which does not exist")
    for path in K8S.iterdir():
        if path.suffix not in (".yaml",) and path.name not in env_files:
            problem(path.name, "is neither a manifest nor read by the kustomization")
    images = [i.get("name") for i in kustomization.get("images", [])]
    if IMAGE not in images:
        problem("kustomization.yaml", f"no `images:` entry for {IMAGE} (users override the image there)")

    config = {}
    for name in env_files:
        values = env_file(K8S / name)
        config.update(values)
        # An empty value is not "unset" to hookline: `HOOKLINE_ALLOW_CIDRS=` stops serve.
        for key, value in values.items():
            if not value:
                problem(name, f"{key} is empty: leave it out (or comment it) instead")
        # Commented examples count too: an operator uncomments them as they are.
        check_env_names(name, re.findall(r"\bHOOKLINE_[A-Z0-9_]+", (K8S / name).read_text()), known)
    grace = duration_seconds(config.get("HOOKLINE_SHUTDOWN_GRACE", "10s"))

    secrets = {}
    for path in K8S.glob("*.example.yaml"):
        for doc in load_all(path):
            if doc["kind"] == "Secret":
                secrets[doc["metadata"]["name"]] = set(doc.get("stringData", {})) | set(doc.get("data", {}))
    if not secrets:
        problem("deploy/k8s", "no Secret template (*.example.yaml) for the database URL")

    if rendered is not None:
        docs = load_all(rendered)
        for doc in docs:
            where = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != kustomization.get("namespace"):
                problem(where, f"rendered outside namespace {kustomization.get('namespace')!r}")
    else:
        docs = [d for name in listed for d in load_all(K8S / name)]
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)

    workloads = by_kind.get("Deployment", []) + by_kind.get("Job", [])
    for workload in workloads:
        check_pod(workload, known, secrets, grace, rendered is not None)

    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    for name in ROLE_OF:
        if name not in deployments:
            problem("deploy/k8s", f"no Deployment {name}")
    dispatcher = deployments.get("hookline-dispatcher")
    if dispatcher and dispatcher["spec"].get("replicas", 1) < 2:
        problem("Deployment/hookline-dispatcher", "runs fewer than 2 replicas")
    if not any(j["spec"]["template"]["spec"]["containers"][0].get("args") == ["migrate"]
               for j in by_kind.get("Job", [])):
        problem("deploy/k8s", "no Job running `hookline migrate`")

    # Every Deployment has a PodDisruptionBudget selecting exactly its pods.
    pdbs = by_kind.get("PodDisruptionBudget", [])
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        if not any(selects(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs):
            problem(f"Deployment/{name}", "no PodDisruptionBudget selects its pods")

    # Each Service selects one Deployment and its target ports are ports it declares.
    expected_services = {"hookline-api": (50051, "grpc"), "hookline-ingest": (8080, "http")}
    for service in by_kind.get("Service", []):
        where = f"Service/{service['metadata']['name']}"
        want = expected_services.pop(service["metadata"]["name"], None)
        first = service["spec"]["ports"][0]
        if want and (first["port"], first.get("name")) != want:
            problem(where, f"first port {first['port']} named {first.get('name')!r}, want {want}")
        selected = [d for d in deployments.values()
                    if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        if len(selected) != 1:
            problem(where, f"selects {len(selected)} Deployments, want 1")
            continue
        ports = {p.get("name"): p["containerPort"]
                 for c in selected[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if target not in ports and target not in ports.values():
                problem(where, f"targetPort {target!r} is no port of {selected[0]['metadata']['name']}")
    for name in expected_services:
        problem("deploy/k8s", f"no Service {name}")


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_pod(workload: dict, known: set[str], secrets: dict, grace: float, rendered: bool) -> None:
    name = workload["metadata"]["name"]
    where = f"{workload['kind']}/{name}"
    pod = workload["spec"]["template"]["spec"]
    security = pod.get("securityContext", {})
    # The restricted Pod Security Standard, and the image's user.
    if security.get("runAsNonRoot") is not True:
        problem(where, "pod securityContext.runAsNonRoot is not true")
    if security.get("runAsUser") != UID:
        problem(where, f"pod runs as user {security.get('runAsUser')}, the image's user is {UID}")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "pod seccompProfile is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problem(where, "mounts a service account token it never uses")
    if workload["kind"] == "Deployment":
        # On SIGTERM hookline gives in-flight deliveries shutdown_grace, then releases their
        # leases and closes the store: the kubelet must not kill it before.
        period = pod.get("terminationGracePeriodSeconds", 30)
        if period <= grace:
            problem(where, f"terminationGracePeriodSeconds {period} is not longer than shutdown_grace {grace:g}s")
    for container in pod["containers"]:
        cwhere = f"{where} container {container['name']}"
        image = container["image"]
        if not rendered and image != f"{IMAGE}:latest":
            problem(cwhere, f"image {image}, want the placeholder {IMAGE}:latest (overridden with `images:`)")
        cs = container.get("securityContext", {})
        if cs.get("readOnlyRootFilesystem") is not True:
            problem(cwhere, "readOnlyRootFilesystem is not true")
        if cs.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "allowPrivilegeEscalation is not false")
        if cs.get("capabilities", {}).get("drop") != ["ALL"]:
            problem(cwhere, "does not drop ALL capabilities")
        resources = container.get("resources", {})
        for kind in ("cpu", "memory"):
            request = resources.get("requests", {}).get(kind)
            limit = resources.get("limits", {}).get(kind)
            if request is None or limit is None:
                problem(cwhere, f"no {kind} request and limit")
            elif quantity(request) > quantity(limit):
                problem(cwhere, f"{kind} request {request} above its limit {limit}")

        env = {e["name"]: e for e in container.get("env", [])}
        check_env_names(cwhere, env, known)
        db = env.get("HOOKLINE_DB", {}).get("valueFrom", {}).get("secretKeyRef")
        if not db:
            problem(cwhere, "HOOKLINE_DB does not come from a Secret")
        else:
            secret = re.sub(r"-[a-z0-9]{10}$", "", db["name"]) if rendered else db["name"]
            if db["name"] not in secrets and secret not in secrets:
                problem(cwhere, f"HOOKLINE_DB from Secret {db['name']!r}, which no template defines")
            elif db["key"] not in secrets.get(db["name"], secrets.get(secret, set())):
                problem(cwhere, f"HOOKLINE_DB from key {db['key']!r}, which the Secret template lacks")

        if workload["kind"] != "Deployment":
            continue
        roles = set(env.get("HOOKLINE_ROLES", {}).get("value", "api,ingest,dispatcher").split(","))
        if name in ROLE_OF and roles != {ROLE_OF[name]}:
            problem(cwhere, f"runs roles {sorted(roles)}, want [{ROLE_OF[name]!r}]")
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        # A role's listener (and the admin one, when set) must listen beyond loopback, on a
        # declared port.
        admin = "HOOKLINE_ADMIN_ADDR" in env
        for role, var in (("ingest", "HOOKLINE_INGEST_ADDR"), ("api", "HOOKLINE_API_ADDR"), ("admin", "HOOKLINE_ADMIN_ADDR")):
            if role in roles or (role == "admin" and admin):
                addr = env.get(var, {}).get("value", "")
                if not addr.startswith("0.0.0.0:") and not addr.startswith("[::]:"):
                    problem(cwhere, f"{var}={addr!r}: the {role} role would listen on loopback only")
                elif port_of(addr) not in ports.values():
                    problem(cwhere, f"{var} port {port_of(addr)} is not a declared container port")
        # Only what the code serves may be probed: HTTP health (/healthz, /readyz) exists on
        # the ingest role's address and the admin address, grpc.health.v1 on the api role's.
        http_ports = set()
        if "ingest" in roles:
            http_ports.add(listen_port(env, "HOOKLINE_INGEST_ADDR"))
        if admin:
            http_ports.add(listen_port(env, "HOOKLINE_ADMIN_ADDR"))
        for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(probe_name)
            if probe is None:
                continue
            if "httpGet" in probe:
                port = probe["httpGet"]["port"]
                port = ports.get(port, port)
                path = probe["httpGet"]["path"]
                if not http_ports:
                    problem(cwhere, f"{probe_name} asks HTTP {path}, served by the ingest role or HOOKLINE_ADMIN_ADDR only")
                elif path not in ("/healthz", "/readyz"):
                    problem(cwhere, f"{probe_name} asks {path}, not /healthz or /readyz")
                elif port not in http_ports:
                    problem(cwhere, f"{probe_name} asks port {port}, not the ingest or admin address's")
                if probe_name == "readinessProbe" and path != "/readyz":
                    problem(cwhere, "readinessProbe should ask /readyz (the database)")
            elif "grpc" in probe:
                if "api" not in roles:
                    problem(cwhere, f"{probe_name} asks grpc.health.v1, served by the api role only")
                elif probe["grpc"]["port"] != listen_port(env, "HOOKLINE_API_ADDR"):
                    problem(cwhere, f"{probe_name} asks port {probe['grpc']['port']}, not the api address's")
            else:
                problem(cwhere, f"{probe_name} is neither httpGet nor grpc: hookline has no self-check command")
        if "ingest" in roles and "readinessProbe" not in container:
            problem(cwhere, "runs the ingest role without a readinessProbe on /readyz")
        if "readinessProbe" not in container:
            problem(cwhere, "has no readinessProbe: probe /readyz on the ingest or admin address")
        # Every process records metrics worth having: each must be scrapable where the
        # annotation says.
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        scrape_port = annotations.get("prometheus.io/port")
        if scrape_port is None:
            problem(cwhere, "no prometheus.io/port annotation: its metrics would go unscraped")
        elif int(scrape_port) not in http_ports:
            problem(cwhere, f"prometheus.io/port {scrape_port} serves no /metrics (ingest or admin address)")


# --- Compose and the registry ----------------------------------------------------------


def harness_notifications() -> dict:
    """The notifications section of the config.yml the tests' registry runs with.

    tests/it/harness/registry.rs writes it from a Rust raw string with format! arguments;
    they are replaced by placeholders here, then the YAML is read as the registry would.
    """
    source = (ROOT / "tests" / "it" / "harness" / "registry.rs").read_text()
    m = re.search(r'fn config_yml\(.*?format!\(\s*r#"(.*?)"#', source, re.S)
    if not m:
        sys.exit("tests/it/harness/registry.rs: no config_yml(…) with a format!(r#\"…\"#): "
                 "update harness_notifications in deploy/check.py")
    template = m.group(1)
    # A placeholder alone on a line adds a whole optional section (the token-auth tests'
    # `auth:`), which the notifications never depend on: leave it out.
    template = re.sub(r"^\{\w+\}$", "", template, flags=re.M)
    # Arguments built with format! (`auth = q(&format!("Bearer {token}"))`) keep their
    # shape, with placeholders for what they interpolate; the others become `<name>`.
    values = {name: re.sub(r"\{(\w+)\}", r"<\1>", fmt)
              for name, fmt in re.findall(r'(\w+)\s*=\s*q\(&format!\("([^"]*)"', source[m.end():])}
    filled = re.sub(r"\{(\w+)\}", lambda a: json.dumps(values.get(a.group(1), f"<{a.group(1)}>")), template)
    return yaml.safe_load(filled.replace("{{", "{").replace("}}", "}"))["notifications"]


def without_deployment_values(notifications: dict) -> dict:
    """The section with each endpoint's url and token taken out (they name a deployment)."""
    copy = json.loads(json.dumps(notifications))
    for endpoint in copy.get("endpoints", []):
        endpoint.pop("url", None)
        auth = endpoint.get("headers", {}).get("Authorization")
        if isinstance(auth, list) and len(auth) == 1 and str(auth[0]).startswith("Bearer "):
            endpoint["headers"]["Authorization"] = ["Bearer <token>"]
    return copy


def check_compose() -> None:
    known = known_env()
    path = ROOT / "deploy" / "compose.yaml"
    compose = yaml.safe_load(path.read_text())
    services = compose.get("services", {})
    for name in ("postgres", "registry", "hookline", "listen"):
        if name not in services:
            problem("compose.yaml", f"no service {name!r}")
    if problems:
        return
    for name, service in services.items():
        env = service.get("environment", {})
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        check_env_names(f"compose.yaml service {name}", env, known)
        service["environment"] = env

    hookline, listen, registry = services["hookline"], services["listen"], services["registry"]
    for name, service in (("hookline", hookline), ("listen", listen)):
        build = service.get("build", {})
        dockerfile = (path.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
        if dockerfile != ROOT / "Dockerfile":
            problem(f"compose.yaml service {name}", f"builds {dockerfile}, not the repository's Dockerfile")
    if listen.get("image") != hookline.get("image"):
        problem("compose.yaml service listen", "does not run the image the hookline service builds")
    command = listen.get("command", [])
    if command[:1] != ["listen"] or "0.0.0.0" not in command:
        problem("compose.yaml service listen", f"command {command}: want `listen --bind 0.0.0.0 …`")
    secret = listen["environment"].get("HOOKLINE_LISTEN_SECRET", "")
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        if not secret.startswith("whsec_") or not 24 <= len(raw) <= 64:
            raise ValueError
    except ValueError:
        problem("compose.yaml service listen", "HOOKLINE_LISTEN_SECRET is not whsec_ + base64 of 24-64 bytes "
                "(the API refuses it in `webhooks create --secret`)")
    if not listen.get("healthcheck", {}).get("disable"):
        problem("compose.yaml service listen", "keeps the image's HEALTHCHECK, which asks an ingest role it lacks")

    # The hookline service's health check is the Dockerfile's (which deploy/image/check.sh
    # runs against a live server), with compose's `$$` for `$`.
    test = hookline.get("healthcheck", {}).get("test", [])
    if [arg.replace("$$", "$") for arg in test[1:]] != dockerfile_healthcheck() or test[:1] != ["CMD"]:
        problem("compose.yaml service hookline", "healthcheck.test is not the Dockerfile's HEALTHCHECK CMD")

    # The network webhooks reach `listen` on must be allow-listed, and nothing wider.
    subnets = [ipaddress.ip_network(c["subnet"])
               for c in compose.get("networks", {}).get("default", {}).get("ipam", {}).get("config", [])]
    allowed = [ipaddress.ip_network(c) for c in hookline["environment"].get("HOOKLINE_ALLOW_CIDRS", "").split(",") if c]
    if not subnets or sorted(subnets) != sorted(allowed):
        problem("compose.yaml", f"HOOKLINE_ALLOW_CIDRS {allowed} is not the default network's subnets {subnets}")

    # The registry reads deploy/registry/config.yml, which notifies the hookline service.
    mounts = [v for v in registry.get("volumes", []) if isinstance(v, str)]
    config_mount = [v for v in mounts if v.split(":")[1] == "/etc/docker/registry/config.yml"]
    if not config_mount:
        problem("compose.yaml service registry", "does not mount a config.yml at /etc/docker/registry/config.yml")
        return
    config_path = (path.parent / config_mount[0].split(":")[0]).resolve()
    config = yaml.safe_load(config_path.read_text())
    ours = config.get("notifications", {})
    endpoints = ours.get("endpoints", [])
    if len(endpoints) != 1:
        problem(config_path.name, f"{len(endpoints)} notification endpoints, want 1 (hookline)")
        return
    ingest_port = port_of(hookline["environment"].get("HOOKLINE_INGEST_ADDR", "0.0.0.0:8080"))
    want_url = f"http://hookline:{ingest_port}/v1/notify"
    if endpoints[0].get("url") != want_url:
        problem(config_path.name, f"endpoint url {endpoints[0].get('url')!r}, want {want_url!r}")
    token = hookline["environment"].get("HOOKLINE_REGISTRY_TOKEN")
    if endpoints[0].get("headers", {}).get("Authorization") != [f"Bearer {token}"]:
        problem(config_path.name, "the Authorization header is not `Bearer` + the hookline service's HOOKLINE_REGISTRY_TOKEN")
    theirs = harness_notifications()
    if without_deployment_values(ours) != without_deployment_values(theirs):
        problem(config_path.name,
                "notifications differ from the tests' registry (tests/it/harness/registry.rs) beyond url and token:\n"
                f"    ours:  {json.dumps(without_deployment_values(ours), sort_keys=True)}\n"
                f"    tests: {json.dumps(without_deployment_values(theirs), sort_keys=True)}")
    else:
        print(f"ok: {config_path.relative_to(ROOT)} notifications == the tests' registry's (but url and token)")


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_healthcheck() -> list[str]:
    for word, rest in dockerfile_instructions((ROOT / "Dockerfile").read_text()):
        if word == "HEALTHCHECK":
            m = re.search(r"\bCMD\s+(\[.*\])$", rest)
            return json.loads(m.group(1)) if m else []
    return []


def check_dockerfile(context: Path) -> None:
    known = known_env()
    instructions = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    if len(stages) < 2:
        problem("Dockerfile", "not multi-stage")
        return
    final = instructions[stages[-1]:]
    last = {}
    env = {}
    for word, rest in final:
        last[word] = rest
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    check_env_names("Dockerfile ENV", env, known)
    if last.get("USER", "root").split(":")[0] in ("", "root", "0"):
        problem("Dockerfile", "the final stage runs as root")
    elif last["USER"].split(":")[0] != str(UID):
        problem("Dockerfile", f"USER {last['USER']}: deploy/k8s and deploy/image expect {UID}")
    for word, want in (("ENTRYPOINT", ["hookline"]), ("CMD", ["serve"])):
        if json.loads(last.get(word, "null")) != want:
            problem("Dockerfile", f"{word} {last.get(word)}, want {json.dumps(want)}")
    for var, want in (("HOOKLINE_INGEST_ADDR", "0.0.0.0:"), ("HOOKLINE_API_ADDR", "0.0.0.0:"),
                      ("HOOKLINE_DB", "sqlite:///data/")):
        if not env.get(var, "").startswith(want):
            problem("Dockerfile", f"ENV {var}={env.get(var)!r}, want {want}…")
    if "HEALTHCHECK" not in last:
        problem("Dockerfile", "no HEALTHCHECK")
    if "/data" not in last.get("VOLUME", ""):
        problem("Dockerfile", "no VOLUME for /data")
    exposed = set(last.get("EXPOSE", "").split())
    for var in ("HOOKLINE_INGEST_ADDR", "HOOKLINE_API_ADDR"):
        if var in env and str(port_of(env[var])) not in exposed:
            problem("Dockerfile", f"EXPOSE lacks the port of {var}")

    # What the build reads must be in the context .dockerignore lets through (CONTEXT is
    # that context, copied by check.sh): build.rs's protos, and the files the crate
    # includes at compile time outside its tests.
    needed = {"Cargo.toml", "Cargo.lock", "build.rs"}
    needed.update(re.findall(r'"(proto/[^"]+\.proto)"', (ROOT / "build.rs").read_text()))
    for path in (ROOT / "src").rglob("*.rs"):
        text = path.read_text().split("#[cfg(test)]")[0]
        for macro, arg in re.findall(r'\b(include_str|include_bytes|sqlx::migrate)!\(\s*"([^"]+)"', text):
            base = ROOT if macro == "sqlx::migrate" else path.parent
            needed.add(str((base / arg).resolve().relative_to(ROOT)))
    for rel in sorted(needed):
        if not (context / rel).exists():
            problem(".dockerignore", f"keeps {rel} out of the build context, but the build reads it")
    print(f"ok: the build context holds the {len(needed)} paths the build reads")


def exported_metrics() -> dict[str, str]:
    """Every metric hookline records, name → kind: the `metrics::counter!/gauge!/histogram!("…")`
    calls in src/ (a name is always a literal there, so nothing is missed)."""
    kinds: dict[str, str] = {}
    pattern = re.compile(r'(counter|gauge|histogram)!\(\s*"(hookline_[a-z0-9_]+)"')
    for path in (ROOT / "src").rglob("*.rs"):
        for kind, name in pattern.findall(path.read_text()):
            kinds[name] = kind
    if len(kinds) < 10:
        sys.exit(f"found only {len(kinds)} metrics in src/: has the code changed shape?")
    return kinds


def check_grafana() -> None:
    kinds = exported_metrics()
    # What Prometheus scrapes: a histogram is its _bucket, _sum and _count series.
    series = {name for name, kind in kinds.items() if kind != "histogram"}
    for name, kind in kinds.items():
        if kind == "histogram":
            series.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    path = ROOT / "deploy" / "grafana" / "hookline.json"
    where = str(path.relative_to(ROOT))
    dashboard = json.loads(path.read_text())
    used: set[str] = set()
    queries = 0

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            queries += 1
            names = set(re.findall(r"\b(hookline_[a-z0-9_]+)", target.get("expr", "")))
            if not names:
                problem(where, f"panel {panel.get('title')!r}: a query names no hookline metric")
            for name in names:
                used.add(name)
                if name not in series:
                    problem(where, f"panel {panel.get('title')!r} queries {name}, which hookline does not export")
            if "_bucket" not in target.get("expr", "") and "histogram_quantile" in target.get("expr", ""):
                problem(where, f"panel {panel.get('title')!r}: histogram_quantile over a non-bucket series")
    base = {re.sub(r"_(bucket|sum|count)$", "", name) if name not in kinds else name for name in used}
    for name in sorted(set(kinds) - base):
        problem(where, f"{name} is exported but on no panel")
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name, kind in sorted(kinds.items()):
        row = re.search(rf"^\| `{name}` \| ([a-z]+) \|", operations, re.MULTILINE)
        if not row:
            problem("docs/operations.md", f"{name} ({kind}) is not in the metrics table")
        elif row.group(1) != kind:
            problem("docs/operations.md", f"{name} is a {kind}, the table says {row.group(1)}")
    print(f"ok: {queries} queries over {len(base)} of the {len(kinds)} metrics hookline exports")


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "k8s":
        check_k8s(Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    elif what == "compose":
        check_compose()
    elif what == "grafana":
        check_grafana()
    elif what == "dockerfile" and len(sys.argv) == 3:
        check_dockerfile(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
    if problems:
        print(f"{len(problems)} problem(s):", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


if __name__ == "__main__":
    main()
