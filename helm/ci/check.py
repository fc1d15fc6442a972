"""Self-hosting checks, offline (no Docker engine, no cluster): the chart lints; it renders with
the default values and with a production-like values file; every rendered manifest validates
strictly against the Kubernetes schemas; and the rendered objects wire together — Service
selectors and Ingress, HPA and Secret references point at what exists, ports agree with the
servers' own defaults (read from their --help), and every probe, scrape and certificate path
answers 200 from the real server binaries. Run by `cargo xtask selfhost-check` with the
binaries' paths: check.py ACTIX_API WEBTRANSPORT_SERVER
"""

import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm"
KUBERNETES = "1.30.0"
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print(f"FAIL {message}")


def render(values, label):
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name="videocall", namespace="meet", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            check("videocall" in text, f"{label}: NOTES.txt renders")
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    print(f"{label}: {len(docs)} objects: " + ", ".join(sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)))
    return docs


def validate_strictly(docs, label):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, doc in enumerate(docs):
            f = Path(tmp) / f"{i:02}-{doc['kind']}.yaml"
            f.write_text(yaml.safe_dump(doc))
            files.append(str(f))
        run = subprocess.run(
            [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "-k", KUBERNETES, "--no-warn", *files],
            capture_output=True, text=True,
        )
        print(run.stdout.strip())
        check(run.returncode == 0, f"{label}: kubernetes-validate --strict: {run.stderr.strip() or run.stdout.strip()}")


def pod_specs(docs):
    """(workload, pod template labels, containers) of every Deployment and StatefulSet."""
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            t = d["spec"]["template"]
            yield d, t["metadata"].get("labels", {}), t["spec"]["containers"]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def wiring(docs, label, secrets_outside=()):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = list(pod_specs(docs))
    for d, labels, _ in workloads:
        selector = d["spec"]["selector"]["matchLabels"]
        check(all(labels.get(k) == v for k, v in selector.items()), f"{label}: {d['metadata']['name']} selects its own pods")
    # Services select pods that exist, on ports those pods have.
    for name, svc in by_kind.get("Service", {}).items():
        selector = svc["spec"]["selector"]
        matched = [(d, c) for d, labels, c in workloads if all(labels.get(k) == v for k, v in selector.items())]
        check(matched, f"{label}: Service {name} selects no pods")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            found = [p for _, cs in matched for c in cs for p in c.get("ports", [])
                     if p.get("name") == target or p["containerPort"] == target]
            check(found, f"{label}: Service {name} port {port['name']} targets {target}, which no selected container has")
            for p in found:
                check(p.get("protocol", "TCP") == port.get("protocol", "TCP"),
                      f"{label}: Service {name} port {port['name']} protocol differs from the container's")
    # The Ingress sends to a Service port that exists.
    for name, ing in by_kind.get("Ingress", {}).items():
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = by_kind.get("Service", {}).get(backend["name"])
                check(svc is not None, f"{label}: Ingress {name} sends to a missing Service {backend['name']}")
                if svc:
                    names = [p["name"] for p in svc["spec"]["ports"]]
                    check(backend["port"].get("name") in names, f"{label}: Ingress {name} port {backend['port']} not on {backend['name']}")
        check("cert-manager.io/cluster-issuer" in ing["metadata"].get("annotations", {}), f"{label}: Ingress {name} has the cert-manager annotation")
    # Autoscalers scale Deployments that exist.
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = hpa["spec"]["scaleTargetRef"]
        check(ref["name"] in by_kind.get(ref["kind"], {}), f"{label}: HPA {name} scales a missing {ref['kind']} {ref['name']}")
    # Secret references resolve (to the chart's Secret, with the key, or to one made outside).
    secrets = {n: set(s.get("data", {})) for n, s in by_kind.get("Secret", {}).items()}
    for d, _, containers in workloads:
        for c in containers:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets_outside:
                    check(ref["key"] in secrets.get(ref["name"], set()), f"{label}: {d['metadata']['name']} reads missing secret key {ref['name']}/{ref['key']}")
    # Every port a server listens on is the port its container declares.
    for d, _, containers in workloads:
        for c in containers:
            env = env_of(c)
            declared = {p["containerPort"] for p in c.get("ports", [])}
            for var in ("LISTEN_ADDR", "WEBTRANSPORT_LISTEN", "HEALTH_LISTEN_ADDR", "METRICS_LISTEN_ADDR"):
                if env.get(var):
                    port = int(env[var].rsplit(":", 1)[1])
                    check(port in declared, f"{label}: {d['metadata']['name']} listens on {port} ({var}) but declares {sorted(declared)}")
            # WEBTRANSPORT_CERTIFICATE_URL names a Service and port that exist.
            url = env.get("WEBTRANSPORT_CERTIFICATE_URL")
            if url:
                host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
                svc = by_kind.get("Service", {}).get(host)
                check(svc is not None and int(port) in [p["port"] for p in svc["spec"]["ports"]], f"{label}: {url} names no Service port")
            # A relay on a TLS NATS trusts a CA file that a volume of its pod provides.
            if env.get("NATS_URL", "").startswith("tls://"):
                ca = env.get("NATS_TLS_CA") or ""
                mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
                check(any(ca.startswith(m + "/") for m in mounts), f"{label}: {d['metadata']['name']} trusts {ca!r} for NATS, which no volume provides")
    # Metrics are not reachable through any Service (and so not through the Ingress).
    for name, svc in by_kind.get("Service", {}).items():
        for port in svc["spec"]["ports"]:
            check(port.get("targetPort") != "metrics", f"{label}: Service {name} exposes the metrics port")
    # NetworkPolicies select pods that exist and admit only pods that exist, on their ports.
    for name, policy in by_kind.get("NetworkPolicy", {}).items():
        selector = policy["spec"]["podSelector"]["matchLabels"]
        targets = [c for _, labels, cs in workloads if all(labels.get(k) == v for k, v in selector.items()) for c in cs]
        check(targets, f"{label}: NetworkPolicy {name} selects no pods")
        ports = {p.get("name") for c in targets for p in c.get("ports", [])} | {p["containerPort"] for c in targets for p in c.get("ports", [])}
        for rule in policy["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                check(p["port"] in ports, f"{label}: NetworkPolicy {name} admits port {p['port']}, which its pods lack")
            for peer in rule.get("from", []):
                want = peer["podSelector"]["matchLabels"]
                check(any(all(labels.get(k) == v for k, v in want.items()) for _, labels, _ in workloads),
                      f"{label}: NetworkPolicy {name} admits pods that do not exist ({want})")
    return workloads


def server_defaults(binary):
    """The defaults of a server's address settings, as its --help prints them."""
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())  # help wraps lines
    found = {}
    for var in ("LISTEN_ADDR", "WEBTRANSPORT_LISTEN", "HEALTH_LISTEN_ADDR", "METRICS_LISTEN_ADDR"):
        m = re.search(r"\[env: " + var + r"=[^\]]*\] \[default: (\S+)\]", text)
        if m:
            found[var] = int(m.group(1).rsplit(":", 1)[1])
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(url, limit=20.0):
    deadline = time.time() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except Exception as e:  # not up yet, or an error status
            status = getattr(e, "code", None)
            if status or time.time() > deadline:
                return status
            time.sleep(0.2)


def probe_paths(workloads, container_name):
    """(port name or number → paths) the kubelet probes and Prometheus scrapes."""
    paths = {}
    for d, _, containers in workloads:
        annotations = d["spec"]["template"]["metadata"].get("annotations", {})
        for c in containers:
            if c["name"] != container_name:
                continue
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if "httpGet" in c.get(probe, {}):
                    paths.setdefault(c[probe]["httpGet"]["port"], set()).add(c[probe]["httpGet"]["path"])
            if annotations.get("prometheus.io/scrape") == "true":
                port = int(annotations["prometheus.io/port"])
                name = next((p["name"] for p in c.get("ports", []) if p["containerPort"] == port), port)
                paths.setdefault(name, set()).add(annotations["prometheus.io/path"])
    return paths


def real_paths(actix_api, webtransport_server, workloads):
    """Starts the real servers and asks every path the chart points at, on the port it names."""
    http, health, metrics = free_port(), free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin", "RUST_LOG": "warn"}
    servers = [
        subprocess.Popen([actix_api, "--listen", f"127.0.0.1:{http}", "--metrics-listen", f"127.0.0.1:{metrics}",
                          "--database-url", "sqlite::memory:"], env=env),
        subprocess.Popen([webtransport_server, "--listen", "127.0.0.1:0", "--health-listen", f"127.0.0.1:{health}"], env=env),
    ]
    bases = {"http": http, "metrics": metrics, "health": health}
    try:
        targets = []
        for container, extra in (("actix-api", {}), ("webtransport-server", {"health": {"/certificate"}})):
            ports = probe_paths(workloads, container)
            check(ports, f"the chart points at no paths of {container}")
            for port, paths in list(ports.items()) + list(extra.items()):
                check(port in bases, f"{container}: the chart points at port {port}, which the check does not know")
                if port in bases:
                    targets.append((f"http://127.0.0.1:{bases[port]}", paths))
        for base, paths in targets:
            check(paths, f"the chart points at no paths on {base}")
            for path in sorted(paths):
                status = answers(base + path)
                print(f"GET {base}{path}: {status}")
                check(status == 200, f"GET {path} answers {status}, not 200")
    finally:
        for s in servers:
            s.terminate()
            s.wait(timeout=10)


def compose_ports(defaults_api, defaults_wt):
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    api_env = services["actix-api"]["environment"]
    check(int(api_env["LISTEN_ADDR"].rsplit(":", 1)[1]) == defaults_api["LISTEN_ADDR"], "compose: actix-api listens on its default port")
    check(any(p.endswith(f":{defaults_api['LISTEN_ADDR']}") for p in services["actix-api"]["ports"]), "compose: actix-api's port is published")
    wt_env = services["webtransport-server"]["environment"]
    check(int(wt_env["WEBTRANSPORT_LISTEN"].rsplit(":", 1)[1]) == defaults_wt["WEBTRANSPORT_LISTEN"], "compose: WebTransport on its default port")
    check(any(p.endswith(f":{defaults_wt['WEBTRANSPORT_LISTEN']}/udp") for p in services["webtransport-server"]["ports"]), "compose: WebTransport's UDP port is published")
    check(api_env["WEBTRANSPORT_CERTIFICATE_URL"].endswith(f":{defaults_wt['HEALTH_LISTEN_ADDR']}/certificate"), "compose: the certificate hash comes from the relay's health port")
    check("demo" in services["bot"].get("profiles", []), "compose: the bot is under the demo profile")
    # NATS admits the relays only, over TLS with the certificate nats-tls issues.
    conf = (ROOT / "compose/nats.conf").read_text()
    check("$NATS_PASSWORD" in conf and "tls {" in conf, "compose: nats.conf requires a password and TLS")
    check("./compose/nats.conf:/etc/nats/nats.conf:ro" in services["nats"]["volumes"], "compose: NATS reads compose/nats.conf")
    check(services["nats"]["depends_on"]["nats-tls"]["condition"] == "service_completed_successfully", "compose: NATS starts after its certificate exists")
    tls_dir = services["nats-tls"]["command"][1]
    for relay in ("actix-api", "webtransport-server"):
        env = services[relay]["environment"]
        check(env["NATS_URL"].startswith("tls://") and env.get("NATS_USER") and env.get("NATS_PASSWORD"), f"compose: {relay} uses NATS over TLS with a password")
        check(env["NATS_TLS_CA"] == f"{tls_dir}/ca.pem", f"compose: {relay} trusts the CA nats-tls writes")
        check(f"nats-tls:{tls_dir}:ro" in services[relay]["volumes"], f"compose: {relay} mounts the nats-tls volume")
    check(not any(p.endswith(":9090") for p in services["actix-api"]["ports"]), "compose: the metrics port is not published")


def main():
    actix_api, webtransport_server = sys.argv[1], sys.argv[2]
    report = helm.lint(str(CHART), strict=True)
    for m in report["messages"]:
        print(f"lint: {m}")
    check(not report["errors"] and all(m["severity"] < 2 for m in report["messages"]), f"helm lint: {report}")

    defaults_api, defaults_wt = server_defaults(actix_api), server_defaults(webtransport_server)
    print(f"server defaults: actix-api {defaults_api}, webtransport-server {defaults_wt}")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    check(values["actixApi"]["port"] == defaults_api["LISTEN_ADDR"], "values: actixApi.port is actix-api's default port")
    check(values["webtransport"]["port"] == defaults_wt["WEBTRANSPORT_LISTEN"], "values: webtransport.port is the relay's default")
    check(values["webtransport"]["healthPort"] == defaults_wt["HEALTH_LISTEN_ADDR"], "values: webtransport.healthPort is the relay's default")

    trial = render(None, "default values")
    validate_strictly(trial, "default values")
    workloads = wiring(trial, "default values")
    kinds = {d["kind"] for d in trial}
    for kind in ("Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "Ingress", "Secret", "ConfigMap", "NetworkPolicy"):
        check(kind in kinds, f"default values: no {kind} rendered")
    udp = [s for s in trial if s["kind"] == "Service" and any(p.get("protocol") == "UDP" for p in s["spec"]["ports"])]
    check(udp, "default values: no UDP Service for WebTransport")
    nats = [d for d in trial if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith("-nats")]
    check(nats and nats[0]["spec"]["replicas"] == 3, "default values: NATS is a StatefulSet of 3")

    production = render(helm.values_from_yaml((CHART / "ci/production-values.yaml").read_text()), "production values")
    validate_strictly(production, "production values")
    outside = {"videocall-production", "videocall-oidc"}
    wiring(production, "production values", secrets_outside=outside)
    check(not any(d["kind"] == "Secret" for d in production), "production values: the chart makes no Secret with existingSecret")
    check(not any(d["metadata"]["name"].endswith(("-nats", "-postgres")) for d in production), "production values: no bundled NATS or PostgreSQL")

    compose_ports(defaults_api, defaults_wt)
    real_paths(actix_api, webtransport_server, workloads)

    if failures:
        print(f"\n{len(failures)} self-hosting check(s) failed")
        sys.exit(1)
    print("\nself-hosting checks passed")


if __name__ == "__main__":
    main()
