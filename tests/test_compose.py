"""Checks of the deployment files: compose.yaml, compose.cpu.yaml, Dockerfile,
.env.example, .dockerignore and the optional monitoring profile.

Where the `docker compose` v2 CLI is installed, `docker compose config` is the
real validator (it needs no engine). Everywhere else the files are checked by
what they say: compose.yaml loaded with PyYAML (anchors and merge keys
resolved) plus a small key-set schema that catches typos Compose would reject,
the Dockerfile through dockerfile-parse, .dockerignore through pathspec, and
command lines against the option tables of the installed celery and gunicorn.

Run with: .venv/bin/python -m pytest tests/test_compose.py -q
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pathspec
import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_CPU = ROOT / "compose.cpu.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

REQUIRED_SERVICES = {"postgres", "redis", "web", "worker", "worker-interactive", "worker-training", "beat"}
APP_SERVICES = ("migrate", "web", "worker", "worker-interactive", "worker-training", "beat")  # the Labeller image
# Bulk work (the GPU's), interactive work and training run in separate worker services.
WORKER_QUEUES = {"worker": {"bulk"}, "worker-interactive": {"interactive"}, "worker-training": {"training"}}
GPU_WORKERS = ("worker", "worker-training")
WORKERS = tuple(WORKER_QUEUES)
MONITORING_SERVICES = {"prometheus", "grafana"}
APP_ENV_NAMES = {
    "DJANGO_SETTINGS_MODULE", "LABELLER_DATA_DIR", "LABELLER_SECRET_KEY", "LABELLER_ALLOWED_HOSTS",
    "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "LABELLER_MEDIA_ROOT", "LABELLER_UPLOAD_DIR",
    "LABELLER_STATIC_ROOT", "LABELLER_FEATURE_WEIGHTS", "LABELLER_S3_BUCKET", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_S3_ENDPOINT_URL", "LABELLER_METRICS", "LABELLER_METRICS_TOKEN",
}

# A small schema: the Compose Specification's keys (a superset is harmless; the point is
# to catch typos such as `healthckeck` or `depends-on`, which PyYAML accepts and Compose
# rejects). `docker compose config` below checks the full schema where it is installed.
SERVICE_KEYS = set("""
annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs
container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares
cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules devices dns dns_opt
dns_search domainname entrypoint env_file environment expose extends external_links extra_hosts
gpus group_add healthcheck hostname image init ipc isolation label_file labels links logging
mac_address mem_limit mem_reservation mem_swappiness memswap_limit models network_mode networks
oom_kill_disable oom_score_adj pid pids_limit platform ports post_start pre_stop privileged
profiles provider pull_policy read_only restart runtime scale secrets security_opt shm_size
stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits use_api_socket
user userns_mode uts volumes volumes_from working_dir""".split())
TOP_LEVEL_KEYS = {"name", "include", "services", "networks", "volumes", "secrets", "configs", "models"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEVICE_KEYS = {"driver", "count", "device_ids", "capabilities", "options"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")

# Compose's interpolation, only the forms these files use: ${NAME}, ${NAME:-default},
# ${NAME-default}, ${NAME:?message}, ${NAME?message}; `$$` is a literal `$` (left for the
# container's shell). Defaults here hold no nested ${...}. A short regex rather than a
# library: the shell-style expanders on PyPI read `$$` as the process id.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingRequiredVariable(Exception):
    pass


def interpolate(text: str, env: dict) -> str:
    def resolve(m):
        name, op, arg = m.group("name", "op", "arg")
        value = env.get(name)
        present = bool(value) if op and op.startswith(":") else value is not None
        if op and op.endswith("?") and not present:
            raise MissingRequiredVariable(f"{name}: {arg}")
        if op and op.endswith("-") and not present:
            return arg
        return value or ""

    return INTERPOLATION.sub(resolve, text)


def referenced_variables(node) -> set[str]:
    if isinstance(node, dict):
        return set().union(*map(referenced_variables, node.values()))
    if isinstance(node, list):
        return set().union(*map(referenced_variables, node))
    return {m.group("name") for m in INTERPOLATION.finditer(node)} if isinstance(node, str) else set()


@functools.lru_cache(maxsize=None)
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # compose.yaml itself must need no custom tags


def services() -> dict:
    return compose()["services"]


def service(name: str) -> dict:
    assert name in services(), f"compose.yaml has no service {name!r}"
    return services()[name]


def core_services() -> dict:
    """The services `docker compose up` starts: those in no profile."""
    return {n: s for n, s in services().items() if not s.get("profiles")}


def shared_env() -> dict:
    return next(v for k, v in compose().items() if k.startswith("x-") and isinstance(v, dict) and "DATABASE_URL" in v)


def command_tokens(cmd) -> list[str]:
    """A command (list or string) as argv, Compose-escaped $$ turned to $."""
    if cmd is None:
        return []
    tokens = list(map(str, cmd)) if isinstance(cmd, list) else shlex.split(cmd)
    return [t.replace("$$", "$") for t in tokens]


def healthcheck_tokens(hc: dict) -> list[str]:
    """argv of a healthcheck test; for CMD-SHELL, the first pipeline stage."""
    kind, *rest = ["CMD-SHELL", hc["test"]] if isinstance(hc["test"], str) else hc["test"]
    assert kind in {"CMD", "CMD-SHELL"}, f"unexpected healthcheck form {kind!r}"
    tokens = command_tokens(rest if kind == "CMD" else " ".join(rest))
    stop = next((i for i, t in enumerate(tokens) if t in {"|", "&&", "||", ";"} or t.startswith(">")), None)
    return tokens[:stop]


def env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    return {k: v.strip() for k, v in pairs}


def env_example_documented_names() -> set[str]:
    """Names set in .env.example or shown there commented out."""
    return set(re.findall(r"^\s*#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))


def service_environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def option_value(argv: list[str], *names: str) -> str | None:
    for i, tok in enumerate(argv):
        for name in names:
            if tok == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and tok.startswith(name + "="):
                return tok.split("=", 1)[1]
    return None


def assert_celery_argv_valid(argv: list[str], subcommand: str):
    from celery.bin.celery import celery as celery_cli

    def options(command):
        return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}

    assert argv[0] == "celery" and subcommand in argv, f"{argv} does not run `celery {subcommand}`"
    split = argv.index(subcommand)
    for tokens, known in ((argv[1:split], options(celery_cli)),
                          (argv[split + 1:], options(celery_cli.commands[subcommand]))):
        for tok in tokens:
            if tok.startswith("-"):
                assert tok.split("=", 1)[0] in known, f"unknown celery {subcommand} option {tok!r}"


# --------------------------------------------------------------------------
# Dockerfile (dockerfile-parse: continuation lines, comments, ARG substitution)
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(ROOT / "Dockerfile"))


def final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, value) of the last stage, from its FROM on."""
    structure = [(i["instruction"], i["value"]) for i in dockerfile().structure if i["instruction"] != "COMMENT"]
    last_from = max(n for n, (k, _) in enumerate(structure) if k == "FROM")
    return structure[last_from:]


def final_runs() -> list[str]:
    return [value for keyword, value in final_stage() if keyword == "RUN"]


def dockerfile_cmd_tokens() -> list[str]:
    argv = json.loads(dockerfile().cmd) if dockerfile().cmd.startswith("[") else ["sh", "-c", dockerfile().cmd]
    if argv[0].rsplit("/", 1)[-1] in {"sh", "bash"} and argv[1] == "-c":
        argv = shlex.split(argv[2])
    return argv[1:] if argv[0] == "exec" else argv


# ==========================================================================
# compose.yaml: structure
# ==========================================================================

def test_compose_names_required_services_and_only_known_keys():
    doc = compose()
    missing = REQUIRED_SERVICES - set(core_services())
    assert not missing, f"compose.yaml lacks services {sorted(missing)} (outside any profile)"
    unknown_top = {k for k in doc if not k.startswith("x-")} - TOP_LEVEL_KEYS
    assert not unknown_top, f"unknown top-level keys {sorted(unknown_top)} (the obsolete `version` too)"
    for name, svc in services().items():
        assert not set(svc) - SERVICE_KEYS, f"service {name} has keys outside the Compose spec"


def test_app_services_run_the_one_image_built_from_this_repo():
    images = set()
    for name in APP_SERVICES:
        build = service(name).get("build")
        assert build, f"{name} has no build section"
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context).resolve() == ROOT, f"{name} builds from {context!r}, not the repo root"
        if isinstance(build, dict) and build.get("dockerfile"):
            assert (ROOT / context / build["dockerfile"]).is_file()
        images.add(service(name).get("image"))
    assert len(images) == 1 and None not in images, f"app services use different images: {images}"


@pytest.mark.parametrize("name", GPU_WORKERS)
def test_bulk_and_training_workers_reserve_an_nvidia_gpu(name):
    devices = service(name).get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert devices and any(d.get("driver") == "nvidia" for d in devices), f"{name}: no nvidia reservation"
    for device in devices:
        assert set(device) <= DEVICE_KEYS, f"unknown device keys {set(device) - DEVICE_KEYS}"
        assert "gpu" in (device.get("capabilities") or []), "capabilities must include gpu"
        count = device.get("count", "all")
        assert count == "all" or (isinstance(count, int) and count >= 1), f"bad GPU count {count!r}"
        assert not ("count" in device and "device_ids" in device), "count and device_ids are exclusive"


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_consumes_its_own_queue_one_task_at_a_time(name):
    argv = command_tokens(service(name).get("command"))
    assert_celery_argv_valid(argv, "worker")
    assert option_value(argv, "-A", "--app") == "workers.celery"
    queues = option_value(argv, "-Q", "--queues")
    assert queues and set(queues.split(",")) == WORKER_QUEUES[name], f"{name} queues {queues!r}"
    assert option_value(argv, "--prefetch-multiplier") == "1"
    concurrency = option_value(argv, "-c", "--concurrency")
    assert concurrency and interpolate(concurrency, env_example()).isdigit(), f"concurrency {concurrency!r}"


def routed_queues() -> set[str]:
    """The queues of workers/celery.py's routes and the default queue, read from the source."""
    tree = ast.parse((ROOT / "workers" / "celery.py").read_text())
    names = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    routes = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                  and ast.unparse(n.targets[0]) == "app.conf.task_routes")
    queues = {names.get(ast.unparse(r.values[0]), getattr(r.values[0], "value", None)) for r in routes.values}
    default = re.search(r'^CELERY_TASK_DEFAULT_QUEUE = "(\w+)"', (ROOT / "labeller/settings/base.py").read_text(), re.M)
    return queues | {default.group(1)}


def test_the_workers_consume_every_routed_queue_and_only_bulk_and_training_have_the_gpu():
    assert routed_queues() == set().union(*WORKER_QUEUES.values())
    assert not service("worker-interactive").get("deploy", {}).get("resources", {}).get("reservations")


def test_beat_is_single_and_keeps_its_schedule_on_a_volume():
    beat = service("beat")
    argv = command_tokens(beat.get("command"))
    assert_celery_argv_valid(argv, "beat")
    assert option_value(argv, "-A", "--app") == "workers.celery"
    schedule = option_value(argv, "-s", "--schedule")
    assert schedule and schedule.startswith("/"), "beat needs an absolute --schedule path"
    mounts = [v.split(":")[1] for v in beat.get("volumes", []) if isinstance(v, str)]
    assert any(schedule.startswith(m.rstrip("/") + "/") for m in mounts), f"{schedule} not on a volume {mounts}"
    assert beat.get("deploy", {}).get("replicas", 1) == 1 and beat.get("scale", 1) == 1


def test_long_running_services_have_healthchecks():
    long_running = [n for n, s in services().items() if str(s.get("restart", "")) != "no"]
    assert REQUIRED_SERVICES <= set(long_running)
    for name in long_running:
        hc = services()[name].get("healthcheck")
        assert hc and not hc.get("disable"), f"{name} has no healthcheck"
        assert set(hc) <= HEALTHCHECK_KEYS, f"{name}: unknown healthcheck keys {set(hc) - HEALTHCHECK_KEYS}"
        test = hc.get("test")
        assert test and test != ["NONE"], f"{name}: empty healthcheck test"
        if isinstance(test, list):
            assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, f"{name}: bad test {test}"
        for key in ("interval", "timeout", "start_period"):
            assert key not in hc or DURATION.match(str(hc[key])), f"{name}: bad {key} {hc.get(key)!r}"
        assert isinstance(hc.get("retries", 3), int)


def test_healthchecks_probe_the_right_thing():
    assert healthcheck_tokens(service("postgres")["healthcheck"])[0] == "pg_isready"
    assert healthcheck_tokens(service("redis")["healthcheck"])[:2] == ["redis-cli", "ping"]
    web = " ".join(healthcheck_tokens(service("web")["healthcheck"]))
    assert "/healthz" in web and ":8000" in web, web
    for name in WORKERS:
        worker = healthcheck_tokens(service(name)["healthcheck"])
        assert_celery_argv_valid(worker, "inspect")
        assert worker[worker.index("inspect") + 1] == "ping"
        assert option_value(worker, "-A", "--app") == "workers.celery"
        # $HOSTNAME must reach the container's shell: written $$HOSTNAME so that Compose does
        # not substitute the host's value (or nothing) when it reads the file.
        assert option_value(worker, "-d", "--destination") == "celery@$HOSTNAME"
        raw = service(name)["healthcheck"]["test"]
        assert raw[0] == "CMD-SHELL" and "$$HOSTNAME" in " ".join(raw)


def test_celery_inspect_ping_is_a_real_inspect_command():
    from celery.worker.control import Panel

    assert Panel.meta["ping"].type == "inspect"


def named_mounts(name: str) -> dict[str, str]:
    """target -> named volume of a service (bind mounts left out); every volume declared."""
    declared, result = set(compose().get("volumes") or {}), {}
    for vol in service(name).get("volumes", []):
        if isinstance(vol, dict):
            if vol.get("type", "volume") != "volume":
                continue
            source, target = vol.get("source"), vol.get("target")
        else:
            source, target = vol.split(":")[:2]
            if source.startswith((".", "/", "~", "$")):
                continue
        assert source in declared, f"{name} mounts undeclared volume {source!r}"
        result[target] = source
    return result


def test_data_lives_on_named_volumes():
    assert named_mounts("postgres").get("/var/lib/postgresql/data"), "postgres data not on a named volume"
    assert named_mounts("redis").get("/data"), "redis data not on a named volume"

    def volume_holding(name, path):
        mounts = named_mounts(name)
        best = max((t for t in mounts if path == t or path.startswith(t.rstrip("/") + "/")), key=len, default=None)
        return mounts.get(best)

    for key in ("LABELLER_MEDIA_ROOT", "LABELLER_UPLOAD_DIR"):
        path = service_environment(service("web"))[key]
        assert volume_holding("web", path), f"web {key} {path} is not on a named volume"
        for name in WORKERS:
            assert volume_holding(name, service_environment(service(name))[key]) == volume_holding("web", path), \
                f"web and {name} must share the volume holding {key}"
    for name in MONITORING_SERVICES:
        assert named_mounts(name), f"{name} keeps its data on no named volume"


def test_app_services_wait_for_healthy_database_and_broker_and_migrations():
    for name in ("web", *WORKERS, "beat"):
        depends = service(name).get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions (long syntax)"
        for dep, condition in (("postgres", "service_healthy"), ("redis", "service_healthy"),
                               ("migrate", "service_completed_successfully")):
            assert depends.get(dep, {}).get("condition") == condition, f"{name} must wait for {dep}: {condition}"
    for name, svc in services().items():
        depends = svc.get("depends_on") or {}
        for dep, spec in (depends.items() if isinstance(depends, dict) else ()):
            assert dep in services() and spec.get("condition") in DEPENDS_CONDITIONS, f"{name}: bad {dep} {spec}"
            if spec["condition"] == "service_healthy":
                assert services()[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no check"


def test_migrate_is_a_one_shot_job():
    migrate = service("migrate")
    assert str(migrate.get("restart")) == "no"
    argv = command_tokens(migrate.get("command"))
    assert argv[:3] == ["python", "manage.py", "migrate"] and "--noinput" in argv, argv
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "ports" not in migrate and "healthcheck" not in migrate


def test_web_publishes_port_8000():
    targets = [str(p["target"]) if isinstance(p, dict) else str(p).rsplit(":", 1)[-1]
               for p in service("web").get("ports", [])]
    assert "8000" in targets


# ==========================================================================
# compose.yaml: the optional monitoring profile
# ==========================================================================

def test_prometheus_and_grafana_are_an_optional_profile():
    for name in MONITORING_SERVICES:
        assert service(name).get("profiles") == ["monitoring"], f"{name} must be in the monitoring profile only"
        for vol in service(name).get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
    assert set(compose()["services"]) - set(core_services()) == MONITORING_SERVICES


def test_prometheus_scrapes_the_metrics_endpoint_with_the_token():
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "labeller")
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert any("web:8000" in t for sc in job["static_configs"] for t in sc["targets"])
    token_file = job["authorization"]["credentials_file"]
    assert token_file == "/run/secrets/" + service("prometheus")["secrets"][0]
    assert compose()["secrets"][service("prometheus")["secrets"][0]] == {"environment": "LABELLER_METRICS_TOKEN"}


def test_grafana_dashboard_is_provisioned_and_shows_the_app_metrics():
    provisioning = ROOT / "deploy/grafana/provisioning"
    datasources = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    dashboards = yaml.safe_load((provisioning / "dashboards/labeller.yml").read_text())
    folder = dashboards["providers"][0]["options"]["path"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service("grafana")["volumes"] if v.startswith("./")}
    source = next(src for target, src in mounts.items() if folder.startswith(target))
    exprs = " ".join(t["expr"] for path in (ROOT / source).glob("*.json")
                     for panel in json.loads(path.read_text())["panels"] for t in panel.get("targets", []))
    for metric in ("django_http_requests_latency_seconds_by_view_method", "django_http_responses_total_by_status",
                   "labeller_training_runs", "labeller_proposal_outcomes_decided", "labeller_celery_queue_depth",
                   "labeller_task_queue_wait_seconds", "labeller_task_run_seconds", "labeller_frames_ingested_last_5m",
                   "labeller_proposal_label_acceptance_ratio", "labeller_proposal_score",
                   "labeller_project_index_version"):
        assert metric in exprs, f"the dashboard shows no {metric}"


# ==========================================================================
# compose.yaml: environment, anchors, secrets
# ==========================================================================

def test_env_anchor_is_shared_and_resolves():
    raw = COMPOSE.read_text()
    anchor = re.search(r"^x-[\w-]+:\s*&([\w-]+)\n(?:  .*\n)*?  DATABASE_URL:", raw, re.M).group(1)
    assert raw.count(f"*{anchor}") >= 2, f"anchor &{anchor} is not reused"
    shared = {k: str(v) for k, v in shared_env().items()}
    assert not APP_ENV_NAMES - set(shared), f"the shared environment lacks {sorted(APP_ENV_NAMES - set(shared))}"
    values = env_example()
    for name in APP_SERVICES:
        env = service_environment(service(name))
        assert {k: env.get(k) for k in shared} == shared, f"{name} does not carry the shared environment"
        resolved = {k: interpolate(v, values) for k, v in env.items()}
        assert not [v for v in resolved.values() if "${" in v]
        assert resolved["DJANGO_SETTINGS_MODULE"] == "labeller.settings.prod"
        db = urlsplit(resolved["DATABASE_URL"])
        assert db.scheme in {"postgres", "postgresql"} and db.hostname == "postgres", resolved["DATABASE_URL"]
        assert db.password == values["POSTGRES_PASSWORD"]
        assert urlsplit(resolved["REDIS_URL"]).hostname == "redis"
        assert urlsplit(resolved["CELERY_BROKER_URL"]).hostname == "redis"
        assert "127.0.0.1" in resolved["LABELLER_ALLOWED_HOSTS"].split(","), "the healthcheck needs 127.0.0.1"
        assert resolved["LABELLER_METRICS"] == "0", "metrics must be off unless .env turns them on"


def test_required_secrets_come_from_env_file_only():
    pg_env = service_environment(service("postgres"))
    for name, value in (("LABELLER_SECRET_KEY", shared_env()["LABELLER_SECRET_KEY"]),
                        ("POSTGRES_PASSWORD", pg_env["POSTGRES_PASSWORD"])):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]*\}", str(value)), f"{name} must be ${{{name}:?...}}"
        with pytest.raises(MissingRequiredVariable):
            interpolate(str(value), {})
    assert re.fullmatch(r"\$\{AWS_SECRET_ACCESS_KEY(:?-)?\}", str(shared_env()["AWS_SECRET_ACCESS_KEY"]))
    assert "${POSTGRES_PASSWORD" in str(shared_env()["DATABASE_URL"]), "DATABASE_URL must take the password from .env"


def test_every_interpolated_variable_is_documented_in_env_example():
    used = referenced_variables(compose()) | {s["environment"] for s in compose().get("secrets", {}).values()}
    assert used, "compose.yaml interpolates nothing; secrets cannot come from .env"
    undocumented = used - env_example_documented_names()
    assert not undocumented, f"{sorted(undocumented)} not documented in .env.example (escape container-side $$VAR)"


def test_env_example_holds_no_real_secrets():
    for key, value in env_example().items():
        if re.search(r"SECRET|PASSWORD|ACCESS_KEY|TOKEN", key):
            assert value in {"", "change-me"}, f".env.example must not hold a real {key}"


def test_env_file_is_kept_out_of_git_and_the_image():
    assert dockerignore_excludes(".env"), ".dockerignore must exclude .env"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".gitignore must ignore .env (it holds the deployment secrets)"


# ==========================================================================
# compose.cpu.yaml: CPU-only override
# ==========================================================================

def test_cpu_override_only_removes_the_gpu_reservation():
    class TagLoader(yaml.SafeLoader):
        """Keeps Compose's merge tags (!reset, !override) as (tag, value) pairs."""

    def tagged(loader, suffix, node):
        construct = {yaml.SequenceNode: loader.construct_sequence, yaml.MappingNode: loader.construct_mapping}
        return "!" + suffix, construct.get(type(node), loader.construct_scalar)(node)

    TagLoader.add_multi_constructor("!", tagged)
    override = yaml.load(COMPOSE_CPU.read_text(), Loader=TagLoader)
    assert set(override) == {"services"} and set(override["services"]) == set(GPU_WORKERS)
    for name in GPU_WORKERS:
        # Sequences are appended when merging; only !reset removes the base reservation,
        # and nothing else in the override changes the worker.
        assert override["services"][name] == {"deploy": {"resources": {"reservations": {"devices": ("!reset", [])}}}}


# ==========================================================================
# Dockerfile
# ==========================================================================

def test_dockerfile_uses_python_311_slim_bookworm():
    final = dockerfile().parent_images[-1]  # ARGs substituted
    assert re.fullmatch(r"(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]+)?", final), final


def test_dockerfile_installs_runtime_system_packages():
    runs = " ".join(final_runs())
    assert "apt-get install" in runs and "--no-install-recommends" in runs
    for package in ("libgl1", "libglib2.0-0"):
        assert re.search(rf"(?<![\w.-]){re.escape(package)}(?![\w.-])", runs), f"{package} not installed"
    assert "rm -rf /var/lib/apt/lists" in runs


def test_dockerfile_installs_requirements_with_a_pip_cache_mount():
    structure = [(i["instruction"], i["value"]) for i in dockerfile().structure]
    copies = {src: args.split()[-1] for kw, args in structure if kw == "COPY"
              for src in [p for p in shlex.split(args) if not p.startswith("--")][:-1]}
    assert "requirements.txt" in copies, "requirements.txt is never copied into the build"
    install = next((v for k, v in structure if k == "RUN" and re.search(r"pip install\b[^&;]*-r\s", v)), None)
    assert install, "no RUN pip install -r requirements.txt"
    assert re.search(r"--mount=type=cache,[^ ]*target=/root/\.cache/pip", install), "pip install without a cache mount"
    assert re.search(r"-r\s+(\S+)", install).group(1) == copies["requirements.txt"]
    if dockerfile().is_multistage:
        assert any(k == "COPY" and "--from=" in v for k, v in final_stage()), "the built venv never reaches the image"


def test_dockerfile_runs_as_non_root():
    stage = final_stage()
    users = [n for n, (k, _) in enumerate(stage) if k == "USER"]
    assert users, "the final stage never switches away from root"
    user = stage[users[-1]][1]
    for name, value in dockerfile().args.items():
        user = user.replace("${" + name + "}", value)
    assert user.split(":")[0] not in {"root", "0", ""}, f"runs as {user!r}"
    assert not [k for k, _ in stage[users[-1]:] if k == "RUN"], "RUN after USER would still need root"


def test_dockerfile_creates_the_writable_paths_for_the_app_user():
    """The app runs unprivileged over a root-owned /app: every path it writes (the settings
    mkdir LABELLER_DATA_DIR on import) must be made its own."""
    env = shared_env()
    schedule = option_value(command_tokens(service("beat")["command"]), "-s", "--schedule")
    paths = {env["LABELLER_DATA_DIR"], env["LABELLER_MEDIA_ROOT"], env["LABELLER_UPLOAD_DIR"], env["TORCH_HOME"],
             schedule.rsplit("/", 1)[0]}
    for name in ("web", *WORKERS):
        paths |= {v.split(":")[1] if isinstance(v, str) else v["target"] for v in service(name).get("volumes", [])}
    for key in ("LABELLER_DATA_DIR", "LABELLER_MEDIA_ROOT", "LABELLER_UPLOAD_DIR", "TORCH_HOME", "LABELLER_STATIC_ROOT"):
        assert dockerfile().envs.get(key) == env[key], f"image and compose disagree on {key}"
    owning = [r for r in final_runs() if "chown" in r or re.search(r"install -d .*-o", r)]
    for path in sorted(paths):
        assert any(re.search(rf"(?<![\w/]){re.escape(path)}(?![\w/])", r) for r in owning), \
            f"{path} is not created/chowned for the app user in the Dockerfile"


def test_dockerfile_collects_static_files_with_a_dummy_secret():
    run = next((r for r in final_runs() if "collectstatic" in r), None)
    assert run and "manage.py collectstatic" in run and "--noinput" in run, "collectstatic is not run at build time"
    assert "LABELLER_SECRET_KEY=" in run, "collectstatic needs a build-time (dummy) LABELLER_SECRET_KEY"
    env = dockerfile().envs
    assert "LABELLER_SECRET_KEY" not in env, "no secret may be baked into the image ENV"
    assert env.get("DJANGO_SETTINGS_MODULE") == "labeller.settings.prod" and env.get("LABELLER_STATIC_ROOT")


def test_dockerfile_exposes_8000_and_serves_wsgi_with_gunicorn():
    from gunicorn.config import KNOWN_SETTINGS

    exposes = " ".join(v for k, v in final_stage() if k == "EXPOSE").split()
    assert "8000" in exposes or "8000/tcp" in exposes
    argv = dockerfile_cmd_tokens()
    assert argv[0] == "gunicorn" and "labeller.wsgi:application" in argv, argv
    assert option_value(argv, "--bind", "-b") == "0.0.0.0:8000"
    assert option_value(argv, "--timeout", "-t"), "set a gunicorn timeout for large uploads"
    known = {flag for setting in KNOWN_SETTINGS for flag in (setting.cli or ())}
    for tok in argv[1:]:
        if tok.startswith("-") and tok != "-":  # a lone "-" is the value "stdout"
            assert tok.split("=", 1)[0] in known, f"unknown gunicorn option {tok!r}"


def test_commands_reference_modules_that_exist():
    argvs = [dockerfile_cmd_tokens()] + [command_tokens(s.get("command")) for s in services().values()]
    argvs += [healthcheck_tokens(s["healthcheck"]) for s in services().values() if s.get("healthcheck")]
    modules = {dockerfile().envs["DJANGO_SETTINGS_MODULE"], shared_env()["DJANGO_SETTINGS_MODULE"]}
    for argv in argvs:
        modules |= {t.split(":")[0] for t in argv if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", t)}
        modules |= {argv[i + 1] for i, t in enumerate(argv[:-1]) if t in {"-A", "--app"}}
    assert {"labeller.wsgi", "workers.celery", "labeller.settings.prod"} <= modules
    for module in modules:
        base = ROOT.joinpath(*module.split("."))
        assert base.with_suffix(".py").is_file() or (base / "__init__.py").is_file(), f"{module} is not in the repo"
    assert (ROOT / "manage.py").is_file()


# ==========================================================================
# .dockerignore (pathspec's gitignore matching; Docker anchors bare names at the
# context root instead, which agrees for the top-level names below)
# ==========================================================================

def dockerignore_excludes(path: str) -> bool:
    return pathspec.PathSpec.from_lines("gitignore", (ROOT / ".dockerignore").read_text().splitlines()).match_file(path)


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "var/db.sqlite3", "media/videos/a.mp4", ".git/HEAD",
    "labeller/__pycache__/x.pyc", "bench/out/result.json", ".env",
])
def test_dockerignore_excludes_local_state(path):
    assert dockerignore_excludes(path), f".dockerignore does not exclude {path}"


@pytest.mark.parametrize("path", ["requirements.txt", "manage.py", "labeller/wsgi.py",
                                  "workers/celery.py", "labeller/settings/prod.py", ".env.example"])
def test_dockerignore_keeps_what_the_build_needs(path):
    assert not dockerignore_excludes(path), f".dockerignore excludes {path}, which the image needs"


# ==========================================================================
# docker compose config: the real validator, where the Compose v2 CLI is installed
# ==========================================================================

@functools.lru_cache(maxsize=None)
def _docker_compose_missing() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "the docker CLI has no `compose` v2 plugin: " + ((probe.stderr or probe.stdout).strip()[:200])
    return None


def _compose_config(*files: str, env_file: str, profiles: tuple[str, ...] = ()):
    if reason := _docker_compose_missing():
        pytest.skip(reason)
    cmd = ["docker", "compose", "--project-directory", str(ROOT), "--env-file", env_file]
    for f in files:
        cmd += ["-f", str(ROOT / f)]
    for p in profiles:
        cmd += ["--profile", p]
    env = {k: v for k, v in os.environ.items()
           if k not in env_example_documented_names() and not k.startswith("COMPOSE_")}
    return subprocess.run([*cmd, "config", "--format", "json"], capture_output=True, text=True, env=env, cwd=ROOT)


def test_docker_compose_config_accepts_the_files():
    result = _compose_config("compose.yaml", env_file=str(ENV_EXAMPLE))
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    assert not MONITORING_SERVICES & set(model["services"]), "the monitoring profile must be opt-in"
    devices = model["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" for d in devices)
    assert "$HOSTNAME" in " ".join(model["services"]["worker"]["healthcheck"]["test"])

    cpu = _compose_config("compose.yaml", "compose.cpu.yaml", env_file=str(ENV_EXAMPLE))
    assert cpu.returncode == 0, cpu.stderr
    reservations = json.loads(cpu.stdout)["services"]["worker"].get("deploy", {}).get("resources", {})
    assert not (reservations.get("reservations") or {}).get("devices"), "compose.cpu.yaml kept the GPU reservation"

    monitoring = _compose_config("compose.yaml", env_file=str(ENV_EXAMPLE), profiles=("monitoring",))
    assert monitoring.returncode == 0, monitoring.stderr
    assert MONITORING_SERVICES <= set(json.loads(monitoring.stdout)["services"])


def test_docker_compose_config_refuses_missing_secrets():
    result = _compose_config("compose.yaml", env_file=os.devnull)
    assert result.returncode != 0
    assert "LABELLER_SECRET_KEY" in result.stderr or "POSTGRES_PASSWORD" in result.stderr, result.stderr
