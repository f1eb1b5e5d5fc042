"""Checks of the deployment files: compose.yaml, compose.cpu.yaml, Dockerfile,
.env.example and .dockerignore.

Docker cannot run here, so the files are checked by parsing them: the Compose
file with PyYAML (anchors and merge keys resolved), Compose's ${...}
interpolation re-implemented against .env.example, the Dockerfile by its
instructions, and every command line against the option tables of the
installed celery and gunicorn. When the `docker compose` v2 CLI is installed,
`docker compose config` validates the model as well (it needs no engine).

Run with: .venv/bin/python -m pytest -p no:django tests/test_compose.py -q
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_CPU = ROOT / "compose.cpu.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

REQUIRED_SERVICES = {"postgres", "redis", "web", "worker", "worker-interactive", "worker-training", "beat"}
APP_SERVICES = ("migrate", "web", "worker", "worker-interactive", "worker-training", "beat")  # run the Labeller image
# Bulk work (the GPU's) and interactive work run in separate worker services.
WORKER_QUEUES = {"worker": {"bulk"}, "worker-interactive": {"interactive"}, "worker-training": {"training"}}
GPU_WORKERS = ("worker", "worker-training")
WORKERS = tuple(WORKER_QUEUES)
APP_ENV_NAMES = {
    "DJANGO_SETTINGS_MODULE",
    "LABELLER_DATA_DIR",
    "LABELLER_SECRET_KEY",
    "LABELLER_ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "LABELLER_MEDIA_ROOT",
    "LABELLER_UPLOAD_DIR",
    "LABELLER_STATIC_ROOT",
    "LABELLER_FEATURE_WEIGHTS",
    "LABELLER_S3_BUCKET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_S3_ENDPOINT_URL",
}

# Service attributes of the Compose Specification (a superset is harmless;
# the point is to catch typos such as `healthckeck` or `depends-on`, which
# PyYAML accepts and Compose rejects).
SERVICE_KEYS = {
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop",
    "cgroup", "cgroup_parent", "command", "configs", "container_name",
    "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec",
    "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts",
    "gpus", "group_add", "healthcheck", "hostname", "image", "init", "ipc",
    "isolation", "label_file", "labels", "links", "logging", "mac_address",
    "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit",
    "models", "network_mode", "networks", "oom_kill_disable", "oom_score_adj",
    "pid", "pids_limit", "platform", "ports", "post_start", "pre_stop",
    "privileged", "profiles", "provider", "pull_policy", "read_only",
    "restart", "runtime", "scale", "secrets", "security_opt", "shm_size",
    "stdin_open", "stop_grace_period", "stop_signal", "storage_opt",
    "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user",
    "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
}
TOP_LEVEL_KEYS = {"name", "include", "services", "networks", "volumes",
                  "secrets", "configs", "models"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period",
                    "start_interval", "disable"}
DEVICE_KEYS = {"driver", "count", "device_ids", "capabilities", "options"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy",
                      "service_completed_successfully"}
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")


# --------------------------------------------------------------------------
# Loading helpers
# --------------------------------------------------------------------------

class Tagged:
    """A value carrying one of Compose's merge tags (!reset, !override)."""

    def __init__(self, tag, value):
        self.tag, self.value = tag, value

    def __repr__(self):
        return f"Tagged({self.tag!r}, {self.value!r})"


class ComposeOverrideLoader(yaml.SafeLoader):
    """SafeLoader that also understands Compose's !reset and !override."""


def _construct_tagged(loader, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Tagged(node.tag, value)


for _tag in ("!reset", "!override"):
    ComposeOverrideLoader.add_constructor(_tag, _construct_tagged)


@functools.lru_cache(maxsize=None)
def compose() -> dict:
    # Plain safe_load: compose.yaml itself must not need custom tags.
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict:
    return compose()["services"]


def service(name: str) -> dict:
    svcs = services()
    assert name in svcs, f"compose.yaml has no service {name!r}"
    return svcs[name]


def command_tokens(cmd) -> list[str]:
    """A command (list or string) as argv, Compose-escaped $$ turned to $."""
    if cmd is None:
        return []
    tokens = list(map(str, cmd)) if isinstance(cmd, list) else shlex.split(cmd)
    return [t.replace("$$", "$") for t in tokens]


def healthcheck_shell_tokens(hc: dict) -> list[str]:
    """argv of a healthcheck test; for CMD-SHELL, the first pipeline stage."""
    test = hc["test"]
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    kind, *rest = test
    if kind == "CMD":
        return command_tokens(rest)
    assert kind == "CMD-SHELL", f"unexpected healthcheck form {kind!r}"
    tokens = command_tokens(" ".join(rest))
    for i, tok in enumerate(tokens):
        if tok in {"|", ">", "&&", "||", ";"} or tok.startswith(">"):
            return tokens[:i]
    return tokens


# --------------------------------------------------------------------------
# Compose interpolation, as specified in the Compose "interpolation" section
# --------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?",
                     re.S)


class MissingRequiredVariable(Exception):
    pass


def interpolate(text: str, env: dict) -> str:
    def repl(m):
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        parsed = _BRACED.fullmatch(m.group("braced"))
        assert parsed, f"invalid interpolation ${{{m.group('braced')}}}"
        name, op, arg = parsed.group("name", "op", "arg")
        value = env.get(name)
        nonempty, defined = bool(value), value is not None
        if op is None:
            return value or ""
        if op in (":-", "-"):
            return value if (nonempty if op == ":-" else defined) else interpolate(arg, env)
        if op in (":?", "?"):
            if not (nonempty if op == ":?" else defined):
                raise MissingRequiredVariable(f"{name}: {arg}")
            return value
        # :+ and +
        return interpolate(arg, env) if (nonempty if op == ":+" else defined) else ""

    return _INTERPOLATION.sub(repl, text)


def referenced_variables(node) -> set[str]:
    """Names Compose interpolates anywhere in a parsed document's values."""
    found: set[str] = set()
    if isinstance(node, dict):
        for value in node.values():
            found |= referenced_variables(value)
    elif isinstance(node, list):
        for value in node:
            found |= referenced_variables(value)
    elif isinstance(node, str):
        for m in _INTERPOLATION.finditer(node):
            if m.group("named"):
                found.add(m.group("named"))
            elif m.group("braced") is not None:
                parsed = _BRACED.fullmatch(m.group("braced"))
                assert parsed, f"invalid interpolation ${{{m.group('braced')}}} in {node!r}"
                found.add(parsed.group("name"))
                if parsed.group("arg"):
                    found |= referenced_variables(parsed.group("arg"))
    return found


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def env_example_documented_names() -> set[str]:
    """Names set in .env.example or shown there commented out."""
    return set(re.findall(r"^\s*#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))


def service_environment(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# --------------------------------------------------------------------------
# Dockerfile helpers
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    instructions, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not buf and not stripped):
            continue  # comments (also inside continuations) and blank lines
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, args = buf.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    return tuple(instructions)


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def dockerfile_args(instructions) -> dict[str, str]:
    args = {}
    for keyword, rest in instructions:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def expand_build_args(text: str, args: dict) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def dockerfile_env(instructions) -> dict[str, str]:
    env = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            for token in shlex.split(rest):
                if "=" in token:
                    key, _, value = token.partition("=")
                    env[key] = value
    return env


def final_stage() -> list[tuple[str, str]]:
    stages = dockerfile_stages()
    assert stages, "Dockerfile has no FROM"
    return stages[-1]


def dockerfile_cmd_tokens() -> list[str]:
    cmds = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert cmds, "the final Dockerfile stage has no CMD"
    cmd = cmds[-1]
    if cmd.startswith("["):
        argv = json.loads(cmd)
    else:  # shell form
        argv = ["/bin/sh", "-c", cmd]
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in {"sh", "bash"} and argv[1] == "-c":
        argv = shlex.split(argv[2])
    if argv and argv[0] == "exec":
        argv = argv[1:]
    return argv


# --------------------------------------------------------------------------
# Module references
# --------------------------------------------------------------------------

def module_exists(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def referenced_modules() -> dict[str, str]:
    """What the image and the Compose commands import or run -> where from."""
    refs: dict[str, str] = {}

    def scan(tokens, where):
        for i, tok in enumerate(tokens):
            if tok in {"-A", "--app"} and i + 1 < len(tokens):
                refs.setdefault(f"module:{tokens[i + 1]}", where)
            elif tok.startswith("--app="):
                refs.setdefault(f"module:{tok.split('=', 1)[1]}", where)
            elif re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", tok):
                refs.setdefault(f"module:{tok.split(':')[0]}", where)
            elif tok.endswith("manage.py"):
                refs.setdefault("file:manage.py", where)

    scan(dockerfile_cmd_tokens(), "Dockerfile CMD")
    for keyword, args in final_stage():
        if keyword == "RUN":
            scan(shlex.split(args.replace("&&", " && ")), "Dockerfile RUN")
    settings = dockerfile_env(final_stage()).get("DJANGO_SETTINGS_MODULE")
    if settings:
        refs.setdefault(f"module:{settings}", "Dockerfile ENV DJANGO_SETTINGS_MODULE")
    for name, svc in services().items():
        scan(command_tokens(svc.get("command")), f"compose service {name} command")
        if svc.get("healthcheck", {}).get("test"):
            scan(healthcheck_shell_tokens(svc["healthcheck"]), f"compose service {name} healthcheck")
        settings = service_environment(svc).get("DJANGO_SETTINGS_MODULE")
        if settings:
            refs.setdefault(f"module:{settings}", f"compose service {name} environment")
    return refs


# --------------------------------------------------------------------------
# Option tables of the installed tools
# --------------------------------------------------------------------------

def _click_options(command) -> set[str]:
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}


def assert_celery_argv_valid(argv: list[str], subcommand: str):
    pytest.importorskip("celery")
    from celery.bin.celery import celery as celery_cli

    assert argv[0] == "celery", argv
    assert subcommand in argv, f"{argv} does not run `celery {subcommand}`"
    split = argv.index(subcommand)
    global_opts = _click_options(celery_cli)
    sub_opts = _click_options(celery_cli.commands[subcommand])
    for tok in argv[1:split]:
        if tok.startswith("-"):
            assert tok.split("=", 1)[0] in global_opts, f"unknown celery option {tok!r}"
    for tok in argv[split + 1:]:
        if tok.startswith("-"):
            assert tok.split("=", 1)[0] in sub_opts, f"unknown `celery {subcommand}` option {tok!r}"


def option_value(argv: list[str], *names: str) -> str | None:
    for i, tok in enumerate(argv):
        for name in names:
            if tok == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and tok.startswith(name + "="):
                return tok.split("=", 1)[1]
    return None


# ==========================================================================
# compose.yaml: structure
# ==========================================================================

def test_compose_names_required_services_and_only_known_keys():
    doc = compose()
    assert isinstance(doc, dict), "compose.yaml is not a mapping"
    missing = REQUIRED_SERVICES - set(doc.get("services") or {})
    assert not missing, f"compose.yaml lacks services {sorted(missing)}"
    unknown_top = {k for k in doc if not k.startswith("x-")} - TOP_LEVEL_KEYS
    assert not unknown_top, f"unknown top-level keys {sorted(unknown_top)} (the obsolete `version` too)"
    for name, svc in services().items():
        unknown = set(svc) - SERVICE_KEYS
        assert not unknown, f"service {name} has keys outside the Compose spec: {sorted(unknown)}"


def test_app_services_run_the_one_image_built_from_this_repo():
    images = set()
    for name in APP_SERVICES:
        svc = service(name)
        build = svc.get("build")
        assert build, f"{name} has no build section"
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context).resolve() == ROOT, f"{name} builds from {context!r}, not the repo root"
        if isinstance(build, dict) and build.get("dockerfile"):
            assert (ROOT / context / build["dockerfile"]).is_file()
        images.add(svc.get("image"))
    assert len(images) == 1 and None not in images, f"app services use different images: {images}"


@pytest.mark.parametrize("name", GPU_WORKERS)
def test_bulk_and_training_workers_reserve_an_nvidia_gpu(name):
    devices = (service(name).get("deploy", {}).get("resources", {})
               .get("reservations", {}).get("devices"))
    assert devices, f"{name} has no deploy.resources.reservations.devices"
    nvidia = [d for d in devices if d.get("driver") == "nvidia"]
    assert nvidia, f"no nvidia device reservation in {devices}"
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
    assert concurrency, f"{name} concurrency is not set"
    assert interpolate(concurrency, env_example()).isdigit(), f"concurrency {concurrency!r}"


def routed_queues() -> set[str]:
    """The queues named in workers/celery.py's routes and the settings' default queue, read
    from the source (these checks run without Django)."""
    tree = ast.parse((ROOT / "workers" / "celery.py").read_text())
    names = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    routes = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                  and ast.unparse(n.targets[0]) == "app.conf.task_routes")
    queues = {names.get(ast.unparse(route.values[0]), getattr(route.values[0], "value", None))
              for route in routes.values}
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
    assert any(schedule.startswith(m.rstrip("/") + "/") for m in mounts), \
        f"beat schedule {schedule} is not on a mounted volume ({mounts})"
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert "scale" not in beat or beat["scale"] == 1


def test_long_running_services_have_healthchecks():
    long_running = [n for n, s in services().items() if str(s.get("restart", "")) != "no"]
    assert REQUIRED_SERVICES <= set(long_running)
    for name in long_running:
        hc = services()[name].get("healthcheck")
        assert hc, f"{name} has no healthcheck"
        assert set(hc) <= HEALTHCHECK_KEYS, f"{name}: unknown healthcheck keys {set(hc) - HEALTHCHECK_KEYS}"
        assert not hc.get("disable"), f"{name}: healthcheck disabled"
        test = hc.get("test")
        assert test and test != ["NONE"], f"{name}: empty healthcheck test"
        if isinstance(test, list):
            assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, f"{name}: bad test {test}"
        for key in ("interval", "timeout", "start_period"):
            if key in hc:
                assert DURATION.match(str(hc[key])), f"{name}: bad {key} {hc[key]!r}"
        assert isinstance(hc.get("retries", 3), int)


def test_healthchecks_probe_the_right_thing():
    pg = healthcheck_shell_tokens(service("postgres")["healthcheck"])
    assert pg[0] == "pg_isready"
    assert healthcheck_shell_tokens(service("redis")["healthcheck"])[:2] == ["redis-cli", "ping"]
    web = " ".join(healthcheck_shell_tokens(service("web")["healthcheck"]))
    assert "/healthz" in web and ":8000" in web, web

    for name in WORKERS:
        worker = healthcheck_shell_tokens(service(name)["healthcheck"])
        assert_celery_argv_valid(worker, "inspect")
        assert worker[worker.index("inspect") + 1] == "ping"
        assert option_value(worker, "-A", "--app") == "workers.celery"
        destination = option_value(worker, "-d", "--destination")
        # $HOSTNAME must reach the container's shell: Compose would otherwise
        # substitute the *host's* value (or nothing) when it reads the file.
        assert destination == "celery@$HOSTNAME", destination
        raw = service(name)["healthcheck"]["test"]
        assert "$$HOSTNAME" in (raw if isinstance(raw, str) else " ".join(raw))
        assert service(name)["healthcheck"]["test"][0] == "CMD-SHELL", "needs a shell for $HOSTNAME"


def test_celery_inspect_ping_is_a_real_inspect_command():
    pytest.importorskip("celery")
    from celery.worker.control import Panel

    assert Panel.meta["ping"].type == "inspect"


def test_data_lives_on_named_volumes():
    declared = set(compose().get("volumes") or {})

    def named_mounts(name):
        result = {}
        for vol in service(name).get("volumes", []):
            if isinstance(vol, dict):
                source, target, kind = vol.get("source"), vol.get("target"), vol.get("type", "volume")
                if kind != "volume":
                    continue
            else:
                source, target = vol.split(":")[:2]
                if source.startswith((".", "/", "~", "$")):
                    continue  # bind mount
            assert source in declared, f"{name} mounts undeclared volume {source!r}"
            result[target] = source
        return result

    assert named_mounts("postgres").get("/var/lib/postgresql/data"), "postgres data not on a named volume"
    assert named_mounts("redis").get("/data"), "redis data not on a named volume"
    def volume_holding(name, path):
        mounts = named_mounts(name)
        best = max((t for t in mounts if path == t or path.startswith(t.rstrip("/") + "/")),
                   key=len, default=None)
        return mounts.get(best)

    for key in ("LABELLER_MEDIA_ROOT", "LABELLER_UPLOAD_DIR"):
        path = service_environment(service("web"))[key]
        web_volume = volume_holding("web", path)
        assert web_volume, f"web {key} {path} is not on a named volume"
        for name in WORKERS:
            assert volume_holding(name, service_environment(service(name))[key]) == web_volume, \
                f"web and {name} must share the volume holding {key}"


def test_app_services_wait_for_healthy_database_and_broker_and_migrations():
    for name in ("web", *WORKERS, "beat"):
        depends = service(name).get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions (long syntax)"
        for dep, condition in (("postgres", "service_healthy"), ("redis", "service_healthy"),
                               ("migrate", "service_completed_successfully")):
            assert depends.get(dep, {}).get("condition") == condition, \
                f"{name} must wait for {dep} to be {condition}"
    for name, svc in services().items():
        for dep, spec in (svc.get("depends_on") or {}).items() if isinstance(svc.get("depends_on"), dict) else ():
            assert dep in services(), f"{name} depends on unknown service {dep}"
            assert spec.get("condition") in DEPENDS_CONDITIONS, f"{name}: bad condition {spec}"
            if spec["condition"] == "service_healthy":
                assert services()[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no healthcheck"


def test_migrate_is_a_one_shot_job():
    migrate = service("migrate")
    assert str(migrate.get("restart")) == "no"
    argv = command_tokens(migrate.get("command"))
    assert argv[:3] == ["python", "manage.py", "migrate"] and "--noinput" in argv, argv
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "ports" not in migrate and "healthcheck" not in migrate


def test_web_publishes_port_8000():
    targets = []
    for port in service("web").get("ports", []):
        targets.append(str(port["target"]) if isinstance(port, dict) else str(port).rsplit(":", 1)[-1])
    assert "8000" in targets


# ==========================================================================
# compose.yaml: environment, anchors, secrets
# ==========================================================================

def test_env_anchor_is_shared_and_resolves():
    raw = COMPOSE.read_text()
    anchors = re.findall(r"^(x-[\w-]+):\s*&([\w-]+)", raw, re.M)
    env_anchors = [(key, anchor) for key, anchor in anchors
                   if isinstance(compose()[key], dict) and "DATABASE_URL" in compose()[key]]
    assert env_anchors, "no x- extension field with an anchor holds the app environment"
    key, anchor = env_anchors[0]
    assert raw.count(f"*{anchor}") >= 2, f"anchor &{anchor} is not reused"
    shared = {k: str(v) for k, v in compose()[key].items()}
    missing = APP_ENV_NAMES - set(shared)
    assert not missing, f"{key} lacks {sorted(missing)}"

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
        hosts = resolved["LABELLER_ALLOWED_HOSTS"].split(",")
        assert "127.0.0.1" in hosts, "the in-container healthcheck needs 127.0.0.1 allowed"


def test_required_secrets_come_from_env_file_only():
    shared_env = next(v for k, v in compose().items()
                      if k.startswith("x-") and isinstance(v, dict) and "LABELLER_SECRET_KEY" in v)
    pg_env = service_environment(service("postgres"))
    for name, value in (("LABELLER_SECRET_KEY", shared_env["LABELLER_SECRET_KEY"]),
                        ("POSTGRES_PASSWORD", pg_env["POSTGRES_PASSWORD"])):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]*\}", str(value)), \
            f"{name} must be the required interpolation ${{{name}:?...}}, got {value!r}"
        with pytest.raises(MissingRequiredVariable):
            interpolate(str(value), {})
    assert re.fullmatch(r"\$\{AWS_SECRET_ACCESS_KEY(:?-)?\}", str(shared_env["AWS_SECRET_ACCESS_KEY"]))
    db_url = str(shared_env["DATABASE_URL"])
    assert "${POSTGRES_PASSWORD" in db_url, "DATABASE_URL must take the password from .env"


def test_every_interpolated_variable_is_documented_in_env_example():
    documented = env_example_documented_names()
    used = referenced_variables(compose())
    assert used, "compose.yaml interpolates nothing; secrets cannot come from .env"
    undocumented = used - documented
    assert not undocumented, (
        f"compose.yaml interpolates {sorted(undocumented)} which .env.example does not document "
        "(container-side variables must be escaped as $$VAR)")


def test_env_example_holds_no_real_secrets():
    for key, value in env_example().items():
        if re.search(r"SECRET|PASSWORD|ACCESS_KEY", key):
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
    override = yaml.load(COMPOSE_CPU.read_text(), Loader=ComposeOverrideLoader)
    assert set(override) == {"services"} and set(override["services"]) == set(GPU_WORKERS)
    for name in GPU_WORKERS:
        worker = override["services"][name]
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert isinstance(devices, Tagged) and devices.tag == "!reset", \
            "sequences are appended when merging; only !reset removes the base reservation"
        # Nothing else in the override changes the worker.
        assert set(worker) == {"deploy"}
        assert set(worker["deploy"]) == {"resources"}
        assert set(worker["deploy"]["resources"]) == {"reservations"}
        assert set(worker["deploy"]["resources"]["reservations"]) == {"devices"}


# ==========================================================================
# Dockerfile
# ==========================================================================

def test_dockerfile_uses_python_311_slim_bookworm():
    global_args = dockerfile_args(dockerfile_instructions()[:next(
        i for i, (k, _) in enumerate(dockerfile_instructions()) if k == "FROM")])
    bases = []
    for stage in dockerfile_stages():
        image = expand_build_args(stage[0][1].split()[0], global_args)
        bases.append(image)
    assert bases, "no FROM"
    final = bases[-1]
    assert re.fullmatch(r"(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]+)?", final), \
        f"final stage base is {final!r}"


def test_dockerfile_installs_runtime_system_packages():
    runs = " ".join(args for keyword, args in final_stage() if keyword == "RUN")
    assert "apt-get install" in runs
    for package in ("libgl1", "libglib2.0-0"):
        assert re.search(rf"(?<![\w.-]){re.escape(package)}(?![\w.-])", runs), f"{package} not installed"
    assert "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists" in runs


def test_dockerfile_installs_requirements_with_a_pip_cache_mount():
    assert (ROOT / "requirements.txt").is_file()
    copies = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            *sources, dest = parts
            for src in sources:
                copies[src] = dest
    assert "requirements.txt" in copies, "requirements.txt is never copied into the build"
    dest = copies["requirements.txt"]
    req_path = dest if not dest.endswith("/") else dest + "requirements.txt"
    installs = [args for keyword, args in dockerfile_instructions()
                if keyword == "RUN" and re.search(r"pip install\b[^&;]*-r\s+\S*requirements\.txt", args)]
    assert installs, "no RUN pip install -r requirements.txt"
    run = installs[0]
    assert re.search(r"--mount=type=cache,[^ ]*target=/root/\.cache/pip", run), "pip install without a cache mount"
    target = re.search(r"-r\s+(\S+)", run.split("pip install", 1)[1]).group(1)
    assert target in {req_path, "requirements.txt", "./requirements.txt"}, (target, req_path)
    # The installed environment must reach the final stage.
    stages = dockerfile_stages()
    if len(stages) > 1:
        final_copies = " ".join(a for k, a in final_stage() if k == "COPY")
        assert "--from=" in final_copies, "multi-stage build never copies the built venv into the final stage"


def test_dockerfile_runs_as_non_root():
    stage = final_stage()
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the final stage never switches away from root"
    user = expand_build_args(users[-1], dockerfile_args(stage)).split(":")[0]
    assert user not in {"root", "0", ""}, f"runs as {user!r}"
    last_user_index = max(i for i, (k, _) in enumerate(stage) if k == "USER")
    assert not [k for k, _ in stage[last_user_index:] if k == "RUN"], "RUN after USER would still need root"


def test_dockerfile_creates_the_writable_paths_for_the_app_user():
    """The app runs unprivileged over a root-owned /app: every path it writes
    (the settings mkdir LABELLER_DATA_DIR on import) must be made its own."""
    shared_env = next(v for k, v in compose().items()
                      if k.startswith("x-") and isinstance(v, dict) and "LABELLER_DATA_DIR" in v)
    beat_schedule = option_value(command_tokens(service("beat")["command"]), "-s", "--schedule")
    paths = {shared_env["LABELLER_DATA_DIR"], shared_env["LABELLER_MEDIA_ROOT"],
             shared_env["LABELLER_UPLOAD_DIR"], shared_env["TORCH_HOME"], beat_schedule.rsplit("/", 1)[0]}
    for vol in (*service("web").get("volumes", []), *(v for w in WORKERS for v in service(w).get("volumes", []))):
        paths.add(vol.split(":")[1] if isinstance(vol, str) else vol["target"])
    image_env = dockerfile_env(final_stage())
    for key in ("LABELLER_DATA_DIR", "LABELLER_MEDIA_ROOT", "LABELLER_UPLOAD_DIR", "TORCH_HOME",
                "LABELLER_STATIC_ROOT"):
        assert image_env.get(key) == shared_env[key], f"image and compose disagree on {key}"
    owning_runs = [args for keyword, args in final_stage()
                   if keyword == "RUN" and ("chown" in args or re.search(r"install -d .*-o", args))]
    for path in sorted(paths):
        assert any(re.search(rf"(?<![\w/]){re.escape(path)}(?![\w/])", run) for run in owning_runs), \
            f"{path} is not created/chowned for the app user in the Dockerfile"


def test_dockerfile_collects_static_files_with_a_dummy_secret():
    runs = [args for keyword, args in final_stage() if keyword == "RUN" and "collectstatic" in args]
    assert runs, "collectstatic is not run at build time"
    run = runs[0]
    assert "manage.py collectstatic" in run and "--noinput" in run
    assert "LABELLER_SECRET_KEY=" in run, "collectstatic needs a build-time (dummy) LABELLER_SECRET_KEY"
    env = dockerfile_env(final_stage())
    assert "LABELLER_SECRET_KEY" not in env, "no secret may be baked into the image ENV"
    assert env.get("DJANGO_SETTINGS_MODULE") == "labeller.settings.prod"
    assert env.get("LABELLER_STATIC_ROOT"), "static root must be fixed in the image"


def test_dockerfile_exposes_8000_and_serves_wsgi_with_gunicorn():
    exposes = " ".join(args for keyword, args in final_stage() if keyword == "EXPOSE").split()
    assert "8000" in exposes or "8000/tcp" in exposes
    argv = dockerfile_cmd_tokens()
    assert argv[0] == "gunicorn", argv
    assert "labeller.wsgi:application" in argv
    assert option_value(argv, "--bind", "-b") == "0.0.0.0:8000"
    assert option_value(argv, "--timeout", "-t"), "set a gunicorn timeout for large uploads"
    pytest.importorskip("gunicorn")
    from gunicorn.config import KNOWN_SETTINGS

    known = {flag for setting in KNOWN_SETTINGS for flag in (setting.cli or ())}
    for tok in argv[1:]:
        if tok.startswith("-") and tok != "-":  # a lone "-" is the value "stdout"
            assert tok.split("=", 1)[0] in known, f"unknown gunicorn option {tok!r}"


def test_commands_reference_modules_that_exist():
    refs = referenced_modules()
    expected = {"module:labeller.wsgi", "module:workers.celery", "file:manage.py",
                "module:labeller.settings.prod"}
    assert expected <= set(refs), f"expected references missing: {sorted(expected - set(refs))}"
    missing = []
    for ref, where in sorted(refs.items()):
        kind, _, target = ref.partition(":")
        ok = (ROOT / target).is_file() if kind == "file" else module_exists(target)
        if not ok:
            missing.append(f"{target} (used by {where})")
    assert not missing, "referenced but not in the repo: " + "; ".join(missing)


# ==========================================================================
# .dockerignore
# ==========================================================================

def dockerignore_patterns() -> list[str]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _dockerignore_match(pattern: str, path: str) -> bool:
    pattern = pattern.strip("/")
    if pattern.startswith("**/"):
        tail = pattern[3:]
        parts = path.split("/")
        return any(_dockerignore_match(tail, "/".join(parts[i:])) for i in range(len(parts)))
    # A pattern matching a directory excludes everything below it.
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def dockerignore_excludes(path: str) -> bool:
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        if _dockerignore_match(pattern.lstrip("!"), path):
            excluded = not negate
    return excluded


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "var/db.sqlite3", "media/videos/a.mp4", ".git/HEAD",
    "labeller/__pycache__/x.pyc", "bench/out/result.json", ".env",
])
def test_dockerignore_excludes_local_state(path):
    assert dockerignore_excludes(path), f".dockerignore does not exclude {path}"


@pytest.mark.parametrize("path", ["requirements.txt", "manage.py", "labeller/wsgi.py",
                                  "workers/celery.py", "labeller/settings/prod.py"])
def test_dockerignore_keeps_what_the_build_needs(path):
    assert not dockerignore_excludes(path), f".dockerignore excludes {path}, which the image needs"


# ==========================================================================
# docker compose config (only where the Compose v2 CLI is installed)
# ==========================================================================

@functools.lru_cache(maxsize=None)
def _docker_compose_available() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        detail = (probe.stderr or probe.stdout).strip().splitlines()
        return "the docker CLI has no `compose` v2 plugin (" + (detail[0] if detail else "no output") + ")"
    return None


def _compose_config(*files: str, env_file: str, env: dict | None = None):
    cmd = ["docker", "compose", "--project-directory", str(ROOT), "--env-file", env_file]
    for f in files:
        cmd += ["-f", str(ROOT / f)]
    cmd += ["config", "--format", "json"]
    clean_env = {k: v for k, v in os.environ.items()
                 if k not in env_example_documented_names() and not k.startswith("COMPOSE_")}
    clean_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=clean_env, cwd=ROOT)


def test_docker_compose_config_accepts_the_files():
    reason = _docker_compose_available()
    if reason:
        pytest.skip(reason)
    result = _compose_config("compose.yaml", env_file=str(ENV_EXAMPLE))
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    devices = model["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" for d in devices)
    healthcheck = model["services"]["worker"]["healthcheck"]["test"]
    assert "$HOSTNAME" in " ".join(healthcheck)

    cpu = _compose_config("compose.yaml", "compose.cpu.yaml", env_file=str(ENV_EXAMPLE))
    assert cpu.returncode == 0, cpu.stderr
    cpu_worker = json.loads(cpu.stdout)["services"]["worker"]
    reservations = cpu_worker.get("deploy", {}).get("resources", {}).get("reservations", {}) or {}
    assert not reservations.get("devices"), "compose.cpu.yaml did not remove the GPU reservation"


def test_docker_compose_config_refuses_missing_secrets():
    reason = _docker_compose_available()
    if reason:
        pytest.skip(reason)
    result = _compose_config("compose.yaml", env_file=os.devnull)
    assert result.returncode != 0
    assert "LABELLER_SECRET_KEY" in result.stderr or "POSTGRES_PASSWORD" in result.stderr, result.stderr
