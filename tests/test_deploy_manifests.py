"""deploy/ (Kubernetes): every document is valid for the Kubernetes version we support
(kubernetes-validate, strict: an unknown or misspelt field is an error), KEDA's against
the schemas in tests/fixtures/keda/, and the documents agree with each other and with the
product: the keys they read exist, the probes ask for views the URL conf serves, the
commands are the Dockerfile's and docker-compose.yml's, the selectors pick the right pods,
and the autoscaler counts the lists Celery really fills.

kustomize is not needed: kustomization.yaml only lists files (and the image's name), which
`applied()` reads as `kubectl apply -k` does."""

import json
import re
import runpy
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KEDA_SCHEMAS = Path(__file__).resolve().parent / "fixtures" / "keda"
# The oldest Kubernetes the manifests are for (README, "Production on Kubernetes").
KUBERNETES = "1.30.0"
# Settings that hold a password or a key: in the Secret, never in the ConfigMap.
SECRET_SETTINGS = {
    "SECRET_KEY",
    "FIELD_ENCRYPTION_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "METRICS_TOKEN",
}
# The parameters each scaler takes from a TriggerAuthentication (KEDA's docs).
AUTH_PARAMETERS = {
    "redis": {"address", "host", "port", "username", "password", "tls", "ca", "cert", "key"},
    "rabbitmq": {"host", "username", "password", "vhostName", "tls", "ca", "cert", "key"},
}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization() -> dict:
    return documents(DEPLOY / "kustomization.yaml")[0]


def applied() -> list[dict]:
    """What `kubectl apply -k deploy/` creates (before kustomize renames the image)."""
    return [doc for name in kustomization()["resources"] for doc in documents(DEPLOY / name)]


def examples() -> list[dict]:
    """The documents a user applies instead of, or besides, some of `applied()`."""
    paths = [DEPLOY / "secret.example.yaml", *sorted((DEPLOY / "alternatives").glob("*.yaml"))]
    return [doc for path in paths for doc in documents(path)]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    [found] = [
        doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    return found


def workloads() -> list[dict]:
    return [doc for doc in applied() if doc["kind"] in ("Deployment", "Job")]


def pod(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> list[dict]:
    return [*pod(workload).get("initContainers", []), *pod(workload)["containers"]]


def container(component: str, name: str) -> dict:
    workload = one(workloads(), "Deployment", f"im-assistant-{component}")
    return next(c for c in containers(workload) if c["name"] == name)


def env_value(spec: dict, name: str) -> str:
    return next(var["value"] for var in spec.get("env", []) if var["name"] == name)


def config() -> dict[str, str]:
    return one(applied(), "ConfigMap")["data"]


def secret_keys() -> set[str]:
    return set(one(examples(), "Secret")["stringData"])


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def compose_command(service: str) -> list[str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return shlex.split(compose["services"][service]["command"])


def documented_variables() -> set[str]:
    """Every variable .env.example documents (set or commented out)."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def keda_schema(kind: str) -> dict:
    return json.loads((KEDA_SCHEMAS / f"{kind.lower()}.schema.json").read_text())


def probes(spec: dict) -> Iterator[tuple[str, dict]]:
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        if kind in spec:
            yield kind, spec[kind]


# --- Each document on its own ---------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_nothing_else():
    assert set(kustomization()) <= {"apiVersion", "kind", "resources", "images"}, (
        "applied() reads only these; another transformer would change what is applied"
    )
    listed = set(kustomization()["resources"])
    present = {path.name for path in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}


@pytest.mark.parametrize(
    "doc",
    [doc for doc in applied() + examples() if not doc["apiVersion"].startswith("keda.sh/")],
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_each_document_is_valid_for_kubernetes(doc):
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    "doc",
    [doc for doc in applied() + examples() if doc["apiVersion"].startswith("keda.sh/")],
    ids=lambda doc: f"{doc['kind']}/{doc['metadata']['name']}",
)
def test_each_keda_document_is_valid_for_keda(doc):
    jsonschema.validate(doc, keda_schema(doc["kind"]))
    behavior = doc["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
    if "behavior" in behavior:  # KEDA hands it to the HorizontalPodAutoscaler it makes
        hpa = one(examples(), "HorizontalPodAutoscaler")
        kubernetes_validate.validate(
            {**hpa, "spec": {**hpa["spec"], "behavior": behavior["behavior"]}},
            KUBERNETES,
            strict=True,
        )


def test_the_validators_refuse_a_misspelt_field():
    """The checks above can fail: one letter's case is enough."""
    web = one(applied(), "Deployment", "im-assistant-web")
    pod(web)["containers"][0]["readinessprobe"] = pod(web)["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(web, KUBERNETES, strict=True)

    scaled = one(applied(), "ScaledObject")
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 4  # KEDA takes strings only
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, keda_schema("ScaledObject"))


# --- Configuration and secrets --------------------------------------------------------------


def test_every_key_is_a_setting_the_product_reads_and_secrets_stay_secret():
    keda_keys = {
        ref["key"]
        for doc in applied() + examples()
        if doc["kind"] == "TriggerAuthentication"
        for ref in doc["spec"]["secretTargetRef"]
    }
    assert set(config()) <= documented_variables()
    assert secret_keys() <= documented_variables() | keda_keys
    assert not set(config()) & SECRET_SETTINGS
    assert secret_keys() >= SECRET_SETTINGS


def test_every_container_reads_the_config_and_the_secret_and_what_it_names_exists():
    secret_name = one(examples(), "Secret")["metadata"]["name"]
    config_name = one(applied(), "ConfigMap")["metadata"]["name"]
    for workload in workloads():
        for spec in containers(workload):
            where = f"{workload['metadata']['name']}/{spec['name']}"
            sources = spec["envFrom"]
            assert [s.get("configMapRef", s.get("secretRef"))["name"] for s in sources] == [
                config_name,
                secret_name,
            ], where
            defined = set(config()) | secret_keys()
            for var in spec.get("env", []):
                # $(NAME) is expanded from the variables defined before this one.
                for used in re.findall(r"\$\(([A-Z_][A-Z0-9_]*)\)", var.get("value", "")):
                    assert used in defined, (where, var["name"], used)
                assert var["name"] in documented_variables() | {"POD_IP"}, (where, var["name"])
                defined.add(var["name"])


# --- The web: probes, paths, shutdown --------------------------------------------------------


def test_the_probes_ask_for_the_health_views_on_a_port_of_the_container(client):
    from conversations.health import healthz, readyz

    expected = {"startupProbe": healthz, "readinessProbe": readyz, "livenessProbe": healthz}
    checked = 0
    for workload in workloads():
        for spec in containers(workload):
            ports = {port["name"] for port in spec.get("ports", [])}
            for kind, probe in probes(spec):
                if "httpGet" not in probe:
                    continue
                get = probe["httpGet"]
                assert resolve(get["path"]).func == expected[kind], (spec["name"], kind)
                assert get["port"] in ports
                # The kubelet would send the pod's address as Host, which Django refuses.
                [host] = [h["value"] for h in get["httpHeaders"] if h["name"] == "Host"]
                if kind != "readinessProbe":  # /readyz's own checks: tests/conversations
                    assert client.get(get["path"], HTTP_HOST=host).status_code == 200
                checked += 1
    assert checked == 4  # web: startup, readiness, liveness; the metrics container: liveness


def test_prometheus_is_pointed_at_metrics_on_a_port_of_the_pod():
    from common.metrics.views import metrics

    scraped = 0
    for workload in workloads():
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        assert resolve(annotations["prometheus.io/path"]).func == metrics
        ports = {
            port["containerPort"] for spec in containers(workload) for port in spec.get("ports", [])
        }
        assert int(annotations["prometheus.io/port"]) in ports
        scraped += 1
    assert scraped == 2  # web, and the workers' metrics container


def test_the_ingress_routes_the_public_paths_only(settings):
    from django.urls import get_resolver

    from conversations.api.messages import STREAM_LIMIT_SECONDS

    served = ["/" + str(route.pattern) for route in get_resolver().url_patterns]
    served.append(settings.STATIC_URL)  # WhiteNoise's, outside the URL conf ("/static/")
    ingress = one(applied(), "Ingress")
    service = one(applied(), "Service", "im-assistant-web")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    for path in paths:
        assert any(url.startswith(path["path"]) for url in served), path["path"]
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    for internal in ("/metrics", "/readyz", "/healthz"):
        assert internal in served
        assert not any(internal.startswith(path["path"]) for path in paths), internal
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > (
        STREAM_LIMIT_SECONDS
    )


def test_the_web_drains_before_it_is_killed():
    """preStop's pause, then gunicorn's graceful timeout, fit in the grace period."""
    from gunicorn.config import Config

    graceful = runpy.run_path(str(ROOT / "gunicorn.conf.py")).get(
        "graceful_timeout", Config().graceful_timeout
    )
    [sleep, pause] = container("web", "web")["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    web = one(workloads(), "Deployment", "im-assistant-web")
    assert pod(web)["terminationGracePeriodSeconds"] > int(pause) + graceful


# --- What runs, as whom, where it writes -------------------------------------------------------


def test_the_commands_are_those_of_the_dockerfile_and_compose():
    [cmd] = re.findall(r"^CMD (\[.*\])$", dockerfile(), re.MULTILINE)
    gunicorn = json.loads(cmd)
    # compose's web: sh -c "python manage.py migrate --noinput && exec gunicorn …"
    migrate, start = compose_command("web")[2].split(" && ")
    assert shlex.split(start) == ["exec", *gunicorn]
    assert container("web", "web")["command"] == gunicorn
    job = one(workloads(), "Job")
    assert pod(job)["containers"][0]["command"] == shlex.split(migrate)
    assert container("worker", "worker")["command"] == compose_command("worker")
    assert container("beat", "beat")["command"] == compose_command("beat")
    # The workers' metrics container is the web process on a port of its own.
    metrics = container("worker", "metrics")
    assert metrics["command"] == [*gunicorn[:-1], f"0.0.0.0:{metrics['ports'][0]['containerPort']}"]
    assert gunicorn[-1] == f"0.0.0.0:{container('web', 'web')['ports'][0]['containerPort']}"


def test_every_container_runs_the_one_image_as_its_user_on_a_read_only_root():
    [image] = kustomization()["images"]
    [uid] = re.findall(r"useradd .*--uid (\d+)", dockerfile())
    [var_dir] = re.findall(r"^ENV .*\bVAR_DIR=(\S+)", dockerfile(), re.MULTILINE)
    for workload in workloads():
        context = pod(workload)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == int(uid)
        assert pod(workload)["automountServiceAccountToken"] is False
        for spec in containers(workload):
            where = f"{workload['metadata']['name']}/{spec['name']}"
            assert spec["image"] == image["name"], where
            assert spec["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert spec["securityContext"]["allowPrivilegeEscalation"] is False, where
            # Where the product writes: VAR_DIR (metrics, the heartbeat file, beat's
            # schedule) and /tmp (gunicorn's and the worker pool's files).
            mounted = {mount["mountPath"] for mount in spec["volumeMounts"]}
            assert mounted == {var_dir, "/tmp"}, where
    assert config()["PROMETHEUS_MULTIPROC_DIR"].startswith(var_dir + "/")
    assert env_value(container("worker", "worker"), "IM_WORKER_HEARTBEAT_FILE").startswith(
        var_dir + "/"
    )
    beat = container("beat", "beat")["command"]
    assert beat[beat.index("-s") + 1].startswith(var_dir + "/")


def test_selectors_pick_their_own_pods_only():
    docs = applied()
    pods = {
        workload["metadata"]["name"]: workload["spec"]["template"]["metadata"]["labels"]
        for workload in workloads()
    }
    for deployment in (doc for doc in docs if doc["kind"] == "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        picked = [name for name, labels in pods.items() if selects(selector, labels)]
        assert picked == [deployment["metadata"]["name"]]
    web = one(docs, "Deployment", "im-assistant-web")["spec"]["selector"]["matchLabels"]
    for name in ("Service", "PodDisruptionBudget"):
        doc = one(docs, name)
        selector = doc["spec"]["selector"]
        assert selector.get("matchLabels", selector) == web, name
    service_port = one(docs, "Service")["spec"]["ports"][0]["targetPort"]
    assert service_port in {port["name"] for port in container("web", "web")["ports"]}


def test_web_and_workers_wait_for_the_migrations_job_and_beat_is_one_pod():
    waits = [
        pod(one(workloads(), "Deployment", f"im-assistant-{component}"))["initContainers"]
        for component in ("web", "worker")
    ]
    assert waits[0] == waits[1]
    [wait] = waits[0]
    assert "python manage.py migrate --check" in wait["command"][-1]
    beat = one(workloads(), "Deployment", "im-assistant-beat")["spec"]
    assert (beat["replicas"], beat["strategy"]["type"]) == (1, "Recreate")


# --- The workers: liveness and grace -----------------------------------------------------------


def liveness(heartbeat_file: Path) -> int:
    """The exit status of the worker's liveness probe, run by a shell as the kubelet does."""
    spec = container("worker", "worker")
    env = {"PATH": "/usr/bin:/bin", "IM_WORKER_HEARTBEAT_FILE": str(heartbeat_file)}
    command = spec["livenessProbe"]["exec"]["command"]
    return subprocess.run(command, env=env, capture_output=True, check=False).returncode


def test_the_worker_liveness_probe_passes_on_a_fresh_beat_only(tmp_path):
    alive = tmp_path / "alive"
    assert liveness(alive) != 0  # no beat yet
    alive.touch()
    assert liveness(alive) == 0
    subprocess.run(["touch", "-d", "5 minutes ago", str(alive)], check=True)
    assert liveness(alive) != 0


def test_the_worker_liveness_window_outlasts_missed_beats_and_the_grace_outlasts_a_task(
    settings,
):
    spec = container("worker", "worker")
    [window] = re.findall(r"-lt (\d+)", spec["livenessProbe"]["exec"]["command"][-1])
    # /readyz's own judgement: three missed beats is a dead worker.
    assert int(window) >= 3 * settings.IM_WORKER_HEARTBEAT_SECONDS
    worker = one(workloads(), "Deployment", "im-assistant-worker")
    assert pod(worker)["terminationGracePeriodSeconds"] > settings.CELERY_TASK_TIME_LIMIT


# --- The autoscaler -------------------------------------------------------------------------


def autoscalers() -> list[tuple[dict, dict]]:
    """(ScaledObject, its TriggerAuthentication) of worker-autoscaler.yaml and alternatives/."""
    pairs = []
    for source in (applied(), examples()):
        scaled = one(source, "ScaledObject")
        pairs.append((scaled, one(source, "TriggerAuthentication")))
    return pairs


def test_the_autoscalers_scale_the_worker_on_every_queue_it_consumes(settings):
    worker = one(workloads(), "Deployment", "im-assistant-worker")
    assert "replicas" not in worker["spec"], "kubectl apply would reset the autoscaler's count"
    assert "-Q" not in container("worker", "worker")["command"]  # so: every declared queue
    queues = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    for scaled, auth in autoscalers():
        assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
        assert scaled["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        counted = set()
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            counted.add(meta.get("listName", meta.get("queueName")))
            # One pod per WORKER_CONCURRENCY tasks waiting.
            target = meta.get("listLength", meta.get("value"))
            assert target == config()["WORKER_CONCURRENCY"]
            assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
            parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
            assert parameters <= AUTH_PARAMETERS[trigger["type"]]
        assert counted == queues
        assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} == {
            one(examples(), "Secret")["metadata"]["name"]
        }
        assert {ref["key"] for ref in auth["spec"]["secretTargetRef"]} <= secret_keys()
        floor = scaled["spec"]["minReplicaCount"]
        assert floor >= 2, "one worker pod restarting must not stop the answers"
    hpa = one(examples(), "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]


def test_the_secret_example_names_one_redis_for_celery_and_for_keda():
    from urllib.parse import urlsplit

    secret = one(examples(), "Secret")["stringData"]
    broker = urlsplit(secret["CELERY_BROKER_URL"])
    assert secret["KEDA_REDIS_ADDRESS"] == f"{broker.hostname}:{broker.port}"
    assert secret["KEDA_REDIS_PASSWORD"] == broker.password
    for trigger in one(applied(), "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["databaseIndex"] == broker.path.strip("/")


def test_celery_puts_a_waiting_task_in_the_list_the_autoscaler_counts(settings):
    """On the real broker: a task sent to each queue is at the head of the Redis list of
    the name the ScaledObject watches."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        pytest.skip("needs Redis as the broker (CI runs on it)")
    from assistant.celery import app

    task = "tests.deploy.counted"  # no such task: nothing runs it, and it is taken back
    with app.connection_for_write() as connection:
        redis = connection.default_channel.client
        for trigger in one(applied(), "ScaledObject")["spec"]["triggers"]:
            name = trigger["metadata"]["listName"]
            app.send_task(task, queue=name)
            head = redis.lindex(name, 0)
            assert head is not None, f"nothing in the Redis list {name!r}"
            assert json.loads(head)["headers"]["task"] == task
            redis.lrem(name, 1, head)
