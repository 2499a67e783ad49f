"""The chart's rendered manifests: what a team deployment relies on."""

from __future__ import annotations

import re

import pytest
import yaml

from chart import (
    DOCKERFILE,
    NAMESPACE,
    RELEASE,
    VALUES_DIR,
    VARIANTS,
    SecretRef,
    render,
    render_error,
    render_notes,
    render_with_existing_secret,
    render_variant,
)

ALL = [
    "default",
    "tls",
    "ingress",
    "existing-secret",
    "initial-token",
    "shared-server-identity",
    "ssh-node-pools",
    "slurm-clusters",
    "metrics",
]
TOKEN = re.compile(r"^sky_[0-9a-f]{64}$")
FULLNAME = f"{RELEASE}-skypilot-api-server"
DASHBOARD_INGRESS = f"{FULLNAME}-dashboard"


def values_file(name: str) -> dict:
    return yaml.safe_load((VALUES_DIR / name).read_text())


@pytest.mark.parametrize("variant", ALL)
def test_exactly_one_server_replica(variant):
    rendered = render_variant(variant)
    assert rendered.statefulset["spec"]["replicas"] == 1
    assert not rendered.all("Deployment") and not rendered.all("HorizontalPodAutoscaler")


def test_no_value_changes_the_replica_count():
    rendered = render(set_values=["replicas=3", "replicaCount=3"])
    assert rendered.statefulset["spec"]["replicas"] == 1


@pytest.mark.parametrize("variant", ALL)
def test_probes_are_grpc_health_checks_on_the_servers_port(variant):
    rendered = render_variant(variant)
    container = rendered.container
    server_port = int(rendered.arg("--port"))
    env = rendered.environment()
    if rendered.arg("--tls-cert"):
        # Kubelet's gRPC probes cannot speak TLS: they use the plaintext health listener.
        health = rendered.arg("--health-port") or env.get("SKYPILOT_HEALTH_PORT")
        assert health is not None, "TLS is on but the server gets no health port"
        expected = int(health)
        assert expected != server_port
    else:
        assert "SKYPILOT_HEALTH_PORT" not in env and rendered.arg("--health-port") is None
        expected = server_port
    declared = {port["containerPort"] for port in container["ports"]}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]
        assert set(probe) & {"httpGet", "tcpSocket", "exec"} == set(), f"{kind} must be a gRPC probe"
        assert isinstance(probe["grpc"]["port"], int), f"{kind}: gRPC probes need a port number"
        assert probe["grpc"]["port"] == expected, kind
        assert probe["grpc"].get("service", "") == "", f"{kind} checks the overall server health"
        assert expected in declared


@pytest.mark.parametrize("variant", ALL)
def test_the_service_exposes_the_grpc_port(variant):
    rendered = render_variant(variant)
    server_port = int(rendered.arg("--port"))
    ports = {port["name"]: port["containerPort"] for port in rendered.container["ports"]}
    service = rendered.named("Service", FULLNAME)
    assert service is not None
    (port,) = [port for port in service["spec"]["ports"] if port["name"] == "grpc"]
    assert port["appProtocol"] == "grpc"
    assert ports[port["targetPort"]] == server_port
    labels = rendered.statefulset["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(key) == value for key, value in service["spec"]["selector"].items())
    headless = rendered.named("Service", rendered.statefulset["spec"]["serviceName"])
    assert headless is not None and headless["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("variant", ALL)
def test_the_persistent_volume_is_mounted_at_the_data_dir(variant):
    rendered = render_variant(variant)
    data_dir = rendered.setting("--data-dir", "SKYPILOT_API_SERVER_DATA_DIR")
    assert data_dir, "the server must be told its data dir"
    claims = {claim["metadata"]["name"]: claim for claim in rendered.statefulset["spec"]["volumeClaimTemplates"]}
    mounts = [m for m in rendered.container["volumeMounts"] if m["mountPath"].rstrip("/") == data_dir.rstrip("/")]
    assert len(mounts) == 1, f"nothing is mounted at {data_dir}"
    assert mounts[0]["name"] in claims, "the data dir must be the StatefulSet's persistent volume"
    assert not mounts[0].get("readOnly")
    assert mounts[0]["name"] not in {volume["name"] for volume in rendered.pod.get("volumes", [])}
    claim = claims[mounts[0]["name"]]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    assert rendered.statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


@pytest.mark.parametrize("variant", ALL)
def test_kubernetes_waits_longer_than_the_server_drains(variant):
    rendered = render_variant(variant)
    grace = rendered.setting("--shutdown-grace-seconds", "SKYPILOT_SHUTDOWN_GRACE_SECONDS")
    assert grace is not None, "the drain grace must be explicit"
    assert rendered.pod["terminationGracePeriodSeconds"] > int(grace)


@pytest.mark.parametrize(
    "termination, grace",
    [(20, 20), (10, 20), (24, 20), (0, 0), (30, 60)],
)
def test_misordered_grace_periods_refuse_to_render(termination, grace):
    message = render_error(
        set_values=[f"terminationGracePeriodSeconds={termination}", f"server.shutdownGraceSeconds={grace}"]
    )
    assert f"terminationGracePeriodSeconds ({termination}) must exceed server.shutdownGraceSeconds ({grace})" in (
        message
    ), message
    assert f"at least {grace + 5}" in message


@pytest.mark.parametrize("termination, grace", [(25, 20), (90, 60), (5, 0)])
def test_grace_periods_with_room_to_flush_render(termination, grace):
    rendered = render(
        set_values=[f"terminationGracePeriodSeconds={termination}", f"server.shutdownGraceSeconds={grace}"]
    )
    assert rendered.pod["terminationGracePeriodSeconds"] == termination
    assert rendered.arg("--shutdown-grace-seconds") == str(grace)


def secret_values(rendered, variant) -> set[str]:
    """Every credential in play: the rendered Secrets' values and the ones the
    values files give (user names are not secret)."""
    found = set()
    for secret in rendered.all("Secret"):
        data = rendered.secret_data(secret["metadata"]["name"])
        found |= {value for key, value in data.items() if key != "username"}
    for name in ("initial-token.yaml",) if variant == "initial-token" else ():
        auth = values_file(name)["auth"]
        found |= {auth["initialAdmin"]["password"], auth["initialServiceAccountToken"]["value"]}
    return {value for value in found if value}


@pytest.mark.parametrize("variant", ALL)
def test_no_secret_value_lands_in_a_configmap_or_plain_env(variant):
    rendered = render_variant(variant)
    secrets = secret_values(rendered, variant)
    if variant != "existing-secret":
        assert secrets, "the chart's Secret holds the initial credentials"
    for config in rendered.all("ConfigMap"):
        for key, value in (config.get("data") or {}).items():
            assert "INITIAL_BASIC_AUTH" not in key and "TOKEN" not in key, key
            for secret in secrets:
                assert secret not in str(value), f"a secret value is in ConfigMap {config['metadata']['name']}"
    for entry in rendered.container.get("env", []):
        if "value" in entry:
            assert not any(secret in str(entry["value"]) for secret in secrets), entry["name"]
    for value in rendered.environment().values():
        assert not any(secret in str(value) for secret in secrets), "a secret value is in the server's environment"
    credentials = [e for e in rendered.container["env"] if e["name"].startswith("SKYPILOT_INITIAL_")]
    assert credentials and all(set(e) == {"name", "value"} for e in credentials), credentials


AUTH_DIR = "/etc/skypilot/initial-auth"


def expected_auth_files(variant: str) -> dict[str, tuple[str, str]]:
    """The files of the initial credentials, by path: (Secret, key)."""
    secret = f"{FULLNAME}-initial-admin"
    keys = {"basicAuth": "basic-auth", "serviceAccountToken": "service-account-token"}
    token = False
    for name in VARIANTS[variant]:
        auth = values_file(name).get("auth", {})
        secret = auth.get("existingSecret") or secret
        keys.update(auth.get("secretKeys", {}))
        token = token or auth.get("initialServiceAccountToken", {}).get("enabled", False)
    files = {f"{AUTH_DIR}/basic-auth": (secret, keys["basicAuth"])}
    if token:
        files[f"{AUTH_DIR}/service-account-token"] = (secret, keys["serviceAccountToken"])
    return files


@pytest.mark.parametrize("variant", ALL)
def test_the_credentials_are_mounted_files_not_environment(variant):
    # A container's environment is inherited by all its processes and stays
    # readable at /proc/1/environ (tini) for the pod's life: no Secret goes there.
    rendered = render_variant(variant)
    container, pod = rendered.container, rendered.pod
    for entry in container.get("env", []):
        assert "secretKeyRef" not in entry.get("valueFrom", {}), f"{entry['name']} takes its value from a Secret"
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, f"the environment takes a whole Secret: {source}"

    # One read-only Secret volume at AUTH_DIR with just the credentials' keys.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"].rstrip("/") == AUTH_DIR]
    assert mount["readOnly"] is True and "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    expected = expected_auth_files(variant)
    (secret_name,) = {secret for secret, _ in expected.values()}
    assert volume["secret"]["secretName"] == secret_name
    items = {f"{AUTH_DIR}/{item['path']}": item["key"] for item in volume["secret"]["items"]}
    assert items == {path: key for path, (_, key) in expected.items()}, "only the credentials' keys are mounted"
    assert not any("mode" in item for item in volume["secret"]["items"])

    # Readable by the server's uid and no one else: the kubelet makes the files
    # root's with the group fsGroup, so the server reads them through the group.
    mode = volume["secret"]["defaultMode"]
    pod_context = pod["securityContext"]
    uid = container["securityContext"].get("runAsUser", pod_context.get("runAsUser"))
    assert uid not in (None, 0) and pod_context.get("fsGroup") is not None
    assert mode & 0o040, f"defaultMode {mode:o}: the group (fsGroup) must read the files"
    assert mode & 0o333 == 0 and mode & 0o007 == 0, f"defaultMode {mode:o}: read-only, and for no one else"

    # The variables hold the paths of those files, and the files the credentials.
    env = rendered.environment()
    files = rendered.secret_files()
    names = {
        "SKYPILOT_INITIAL_BASIC_AUTH": "basic-auth",
        "SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN": "service-account-token",
    }
    given = {name for name in names if name in env}
    assert given == {name for name, file in names.items() if f"{AUTH_DIR}/{file}" in expected}
    for name in given:
        path = env[name]
        assert path == f"{AUTH_DIR}/{names[name]}", f"{name}={path}"
        assert path in files and files[path].read_only and files[path].volume == mount["name"]
        assert (files[path].secret, files[path].key) == expected[path]
        if variant != "existing-secret":
            assert isinstance(files[path].content, str) and files[path].content != path


def test_custom_secret_keys_are_mounted_under_fixed_file_names():
    rendered = render(
        set_values=[
            "auth.secretKeys.basicAuth=admin-auth",
            "auth.secretKeys.serviceAccountToken=ci",
            "auth.initialServiceAccountToken.enabled=true",
        ]
    )
    data = rendered.secret_data(f"{FULLNAME}-initial-admin")
    assert set(data) == {"username", "password", "admin-auth", "ci"}
    env = rendered.environment()
    assert env["SKYPILOT_INITIAL_BASIC_AUTH"] == f"{AUTH_DIR}/basic-auth"
    assert env["SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN"] == f"{AUTH_DIR}/service-account-token"
    assert rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH") == data["admin-auth"]
    assert rendered.file_setting("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN") == data["ci"]


def test_extra_settings_go_to_the_configmap():
    rendered = render(set_values=["server.env.SKYPILOT_EXTRA=on", "server.logLevel=debug"])
    env = rendered.environment()
    assert env["SKYPILOT_EXTRA"] == "on" and env["RUST_LOG"] == "debug"


@pytest.mark.parametrize("variant", ALL)
def test_the_container_is_locked_down(variant):
    rendered = render_variant(variant)
    pod, container = rendered.pod, rendered.container
    pod_context, context = pod.get("securityContext", {}), container["securityContext"]

    def effective(key):
        return context.get(key, pod_context.get(key))

    assert effective("runAsNonRoot") is True
    assert effective("runAsUser") not in (None, 0)
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"] and not context["capabilities"].get("add")
    assert (context.get("seccompProfile") or pod_context.get("seccompProfile"))["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    # The read-only root filesystem leaves /tmp and HOME writable through emptyDirs.
    empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    home = rendered.environment()["HOME"]
    for path in ("/tmp", home):
        mounts = [m for m in container["volumeMounts"] if m["mountPath"] == path]
        assert len(mounts) == 1 and mounts[0]["name"] in empty_dirs, f"{path} must be a writable emptyDir"


def test_the_chart_runs_the_images_user():
    dockerfile = DOCKERFILE.read_text()
    (user,) = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile, re.MULTILINE)
    assert re.search(rf"useradd\b[^\n]*--uid {user[0]}\b", dockerfile.replace("\\\n", " "))
    rendered = render_variant("default")
    assert rendered.container["securityContext"]["runAsUser"] == int(user[0])
    assert rendered.pod["securityContext"]["fsGroup"] == int(user[1] or user[0])
    assert rendered.environment()["HOME"] == "/home/sky"
    assert "--home-dir /home/sky" in dockerfile


def test_the_dockerfile_builds_sky_and_runs_it_as_the_entrypoint():
    dockerfile = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.MULTILINE)
    assert stages[0] == ("rust:1-bookworm", "builder")
    assert stages[-1][0] == "debian:bookworm-slim"
    assert "cargo build --release --locked --bin sky" in dockerfile
    assert "ca-certificates" in dockerfile
    entrypoint = yaml.safe_load(re.search(r"^ENTRYPOINT\s+(\[.*\])", dockerfile, re.MULTILINE).group(1))
    command = yaml.safe_load(re.search(r"^CMD\s+(\[.*\])", dockerfile, re.MULTILINE).group(1))
    assert entrypoint[-1].endswith("/sky")
    assert command == ["api", "start", "--deploy", "--foreground"]
    # The chart gives only args, so the image's entrypoint runs them.
    rendered = render_variant("default")
    assert "command" not in rendered.container
    assert rendered.args[:4] == ["api", "start", "--deploy", "--foreground"]
    assert rendered.arg("--host") == "0.0.0.0" and rendered.arg("--log-format") == "json"
    ignore = (DOCKERFILE.parent / ".dockerignore").read_text().split()
    for needed in ("!Cargo.toml", "!Cargo.lock", "!build.rs", "!src/", "!proto/", "!server/", "!cli/", "!bench/"):
        assert needed in ignore


def test_the_image_has_the_openssh_client():
    # The server runs `ssh` (and `ssh-keygen`) to reach the hosts of SSH node pools.
    dockerfile = DOCKERFILE.read_text().replace("\\\n", " ")
    final_stage = dockerfile[dockerfile.rindex("\nFROM ") :]
    installs = re.findall(r"apt-get install ([^&\n]*)", final_stage)
    assert any("openssh-client" in packages.split() for packages in installs), installs


def test_default_credentials_are_generated_and_kept():
    rendered = render_variant("default")
    secret = rendered.named("Secret", f"{FULLNAME}-initial-admin")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = rendered.secret_data(f"{FULLNAME}-initial-admin")
    assert data["username"] == "admin"
    assert re.fullmatch(r"[A-Za-z0-9]{24}", data["password"])
    assert data["basic-auth"] == f"admin:{data['password']}"
    assert "service-account-token" not in data
    env = rendered.environment()
    assert rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH") == data["basic-auth"]
    assert "SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN" not in env
    assert set(rendered.secret_files()) == {f"{AUTH_DIR}/basic-auth"}, "only the key the server reads is mounted"
    # A new rendering without a cluster to look up generates another password.
    assert render().secret_data(f"{FULLNAME}-initial-admin")["password"] != data["password"]


def test_given_credentials_and_token_reach_the_server():
    rendered = render_variant("initial-token")
    given = values_file("initial-token.yaml")["auth"]
    user, password = given["initialAdmin"]["username"], given["initialAdmin"]["password"]
    assert rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH") == f"{user}:{password}"
    token = rendered.file_setting("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")
    assert token == given["initialServiceAccountToken"]["value"]


def test_a_generated_token_has_the_servers_format():
    rendered = render(set_values=["auth.initialServiceAccountToken.enabled=true"])
    token = rendered.file_setting("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")
    assert TOKEN.match(token), token


def test_an_existing_secret_replaces_the_charts_own():
    rendered = render_variant("existing-secret")
    assert not rendered.all("Secret")
    basic_auth = rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH")
    assert basic_auth == SecretRef("team-skypilot-credentials", "admin-basic-auth")
    token = rendered.file_setting("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")
    assert token == SecretRef("team-skypilot-credentials", "ci-token")
    notes = render_notes("existing-secret")
    assert "team-skypilot-credentials" in notes and '"admin-basic-auth"' in notes


def test_tls_comes_from_a_secret_mounted_read_only():
    rendered = render_variant("tls")
    mount_path = "/etc/skypilot/tls"
    assert rendered.arg("--tls-cert") == f"{mount_path}/tls.crt"
    assert rendered.arg("--tls-key") == f"{mount_path}/tls.key"
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["mountPath"] == mount_path]
    assert mount["readOnly"] is True
    (volume,) = [v for v in rendered.pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "skypilot-api-server-tls"
    assert {item["key"] for item in volume["secret"]["items"]} == {"tls.crt", "tls.key"}
    assert "health" in {port["name"] for port in rendered.container["ports"]}


def test_no_tls_no_ingress_by_default():
    rendered = render_variant("default")
    assert rendered.arg("--tls-cert") is None and not rendered.all("Ingress")


@pytest.mark.parametrize("server_tls, protocol", [(False, "GRPC"), (True, "GRPCS")])
def test_the_ingress_routes_grpc_to_the_service(server_tls, protocol):
    extra = ["tls.yaml"] if server_tls else []
    rendered = render("ingress", values_files=extra)
    ingress = rendered.named("Ingress", FULLNAME)
    assert ingress is not None
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == protocol
    assert annotations["cert-manager.io/cluster-issuer"] == "internal-ca"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["skypilot.example.test"], "secretName": "skypilot-example-test-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "skypilot.example.test"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = rendered.named("Service", backend["name"])
    assert service is not None
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_ingress_annotations_given_by_the_user_win():
    rendered = render(
        "ingress", set_values=["ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-read-timeout=7200"]
    )
    for name in (FULLNAME, DASHBOARD_INGRESS):
        annotations = rendered.named("Ingress", name)["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200", name


# Annotations of cert-manager's ingress-shim: the main Ingress' alone.
CERT_MANAGER_ANNOTATIONS = [
    "cert-manager.io/cluster-issuer",
    "acme.cert-manager.io/http01-edit-in-place",
    "kubernetes.io/tls-acme",
]
# What the dashboard's page asks for, and what its gRPC-Web calls (and gRPC
# clients) ask for: the same paths either way.
PAGE_PATHS = ["/dashboard", "/dashboard/", "/dashboard/index.html", "/dashboard/app.js", "/dashboard/app.css"]
GRPC_PATHS = [
    "/skypilot.v1.UserService/WhoAmI",
    "/skypilot.v1.RequestService/StreamLogs",
    "/google.longrunning.Operations/GetOperation",
    "/grpc.health.v1.Health/Check",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
]


def ingress_for(rendered, host: str, path: str) -> dict | None:
    """The Ingress whose rule serves `path` on `host`, as an Ingress controller
    chooses it: Exact paths first, then the longest Prefix path whose elements
    begin `path`'s (Kubernetes' Prefix semantics); None when none matches."""

    def elements(text: str) -> list[str]:
        return [part for part in text.split("/") if part]

    best, best_length = None, -1
    for ingress in rendered.all("Ingress"):
        for rule in ingress["spec"]["rules"]:
            if rule.get("host") != host:
                continue
            for entry in rule["http"]["paths"]:
                if entry["pathType"] == "Exact" and entry["path"] == path:
                    return ingress
                prefix = elements(entry["path"])
                if entry["pathType"] == "Prefix" and elements(path)[: len(prefix)] == prefix:
                    if len(prefix) > best_length:
                        best, best_length = ingress, len(prefix)
    return best


def annotations_of(rendered, name: str) -> dict[str, str]:
    ingress = rendered.named("Ingress", name)
    assert ingress is not None, f"no Ingress {name}"
    return ingress["metadata"]["annotations"]


def test_the_ingress_renders_a_second_one_for_the_dashboard():
    rendered = render_variant("ingress")
    assert sorted(ingress["metadata"]["name"] for ingress in rendered.all("Ingress")) == [FULLNAME, DASHBOARD_INGRESS]
    dashboard = rendered.named("Ingress", DASHBOARD_INGRESS)
    assert dashboard["metadata"]["labels"] == rendered.named("Ingress", FULLNAME)["metadata"]["labels"]


@pytest.mark.parametrize("settings", [[], ["ingress.dashboard.enabled=true"], ["ingress.dashboard.enabled=false"]])
def test_no_dashboard_ingress_without_the_ingress(settings):
    assert not render(set_values=settings).all("Ingress")


def test_the_dashboard_ingress_can_be_turned_off():
    rendered = render("ingress", set_values=["ingress.dashboard.enabled=false"])
    (ingress,) = rendered.all("Ingress")
    assert ingress["metadata"]["name"] == FULLNAME
    # The main Ingress then carries the page too.
    assert all(ingress_for(rendered, "skypilot.example.test", path) is ingress for path in PAGE_PATHS)


def test_a_release_without_dashboard_values_gets_the_dashboard_ingress():
    # An upgrade with --reuse-values from a release made before the key existed.
    rendered = render("ingress", set_values=["ingress.dashboard=null"])
    assert rendered.named("Ingress", DASHBOARD_INGRESS) is not None


@pytest.mark.parametrize("server_tls, protocol", [(False, "HTTP"), (True, "HTTPS")])
def test_the_dashboard_ingress_sends_the_page_to_an_http_backend(server_tls, protocol):
    rendered = render("ingress", values_files=["tls.yaml"] if server_tls else [])
    main, dashboard = rendered.named("Ingress", FULLNAME), rendered.named("Ingress", DASHBOARD_INGRESS)
    annotations = dashboard["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == protocol
    # The same timeouts (the page's log streams) and body size as the main Ingress.
    for key in ("proxy-read-timeout", "proxy-send-timeout", "proxy-body-size"):
        name = f"nginx.ingress.kubernetes.io/{key}"
        assert annotations[name] == main["metadata"]["annotations"][name], name
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"
    # The same class, host and TLS: the page and its calls share one origin.
    assert dashboard["spec"]["ingressClassName"] == main["spec"]["ingressClassName"] == "nginx"
    assert dashboard["spec"]["tls"] == main["spec"]["tls"]
    assert dashboard["spec"]["tls"] == [{"hosts": ["skypilot.example.test"], "secretName": "skypilot-example-test-tls"}]
    (rule,) = dashboard["spec"]["rules"]
    assert rule["host"] == main["spec"]["rules"][0]["host"] == "skypilot.example.test"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/dashboard", "Prefix")
    backend = path["backend"]["service"]
    assert backend == main["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = rendered.named("Service", backend["name"])
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


@pytest.mark.parametrize("server_tls", [False, True])
def test_grpc_and_grpc_web_calls_stay_with_the_grpc_ingress(server_tls):
    # ingress-nginx routes by path only: the dashboard's gRPC-Web calls use the
    # gRPC clients' paths, so both go to the GRPC backend; only the page goes to
    # the HTTP one.
    rendered = render("ingress", values_files=["tls.yaml"] if server_tls else [])
    host = "skypilot.example.test"
    grpc_protocol, page_protocol = ("GRPCS", "HTTPS") if server_tls else ("GRPC", "HTTP")
    for path in GRPC_PATHS + ["/", "/dashboards", "/metrics"]:
        ingress = ingress_for(rendered, host, path)
        assert ingress["metadata"]["name"] == FULLNAME, path
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == grpc_protocol
    for path in PAGE_PATHS:
        ingress = ingress_for(rendered, host, path)
        assert ingress["metadata"]["name"] == DASHBOARD_INGRESS, path
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == page_protocol
    assert ingress_for(rendered, "other.example.test", "/dashboard/") is None


def test_the_dashboard_ingress_follows_the_ingress_settings():
    rendered = render(
        set_values=[
            "ingress.enabled=true",
            "ingress.host=sky.internal.test",
            "ingress.className=internal-nginx",
            "ingress.maxBodySize=16m",
            "ingress.streamTimeoutSeconds=600",
        ]
    )
    main, dashboard = rendered.named("Ingress", FULLNAME), rendered.named("Ingress", DASHBOARD_INGRESS)
    # The TLS Secret defaults to the main Ingress' default.
    tls = [{"hosts": ["sky.internal.test"], "secretName": f"{FULLNAME}-ingress-tls"}]
    assert dashboard["spec"]["tls"] == main["spec"]["tls"] == tls
    assert dashboard["spec"]["ingressClassName"] == "internal-nginx"
    assert dashboard["spec"]["rules"][0]["host"] == "sky.internal.test"
    annotations = dashboard["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "600"

    plain = render("ingress", set_values=["ingress.tls.enabled=false", "ingress.className="])
    for ingress in plain.all("Ingress"):
        assert "tls" not in ingress["spec"] and "ingressClassName" not in ingress["spec"], ingress["metadata"]["name"]


def test_dashboard_ingress_annotations_merge_like_the_main_ones():
    rendered = render(
        "ingress",
        set_values=[
            "ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/whitelist-source-range=10.0.0.0/8",
            "ingress.annotations.acme\\.cert-manager\\.io/http01-edit-in-place=true",
            "ingress.annotations.kubernetes\\.io/tls-acme=true",
            "ingress.dashboard.annotations.nginx\\.ingress\\.kubernetes\\.io/proxy-read-timeout=60",
            "ingress.dashboard.annotations.example\\.test/page-only=yes",
        ],
    )
    main, dashboard = annotations_of(rendered, FULLNAME), annotations_of(rendered, DASHBOARD_INGRESS)
    # ingress.annotations go on both (values as strings)...
    assert main["nginx.ingress.kubernetes.io/whitelist-source-range"] == "10.0.0.0/8"
    assert dashboard["nginx.ingress.kubernetes.io/whitelist-source-range"] == "10.0.0.0/8"
    # ...except cert-manager's: one Certificate per Secret, made from the main Ingress.
    for name in CERT_MANAGER_ANNOTATIONS:
        assert name in main and name not in dashboard, name
    assert main["cert-manager.io/cluster-issuer"] == "internal-ca"
    # ingress.dashboard.annotations go on the dashboard's alone, and win.
    assert dashboard["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "60"
    assert dashboard["example.test/page-only"] == "yes"
    assert main["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600" and "example.test/page-only" not in main
    assert all(isinstance(value, str) for value in {**main, **dashboard}.values())


def test_the_dashboards_annotations_can_choose_its_backend_protocol():
    rendered = render(
        "ingress", set_values=["ingress.dashboard.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=HTTPS"]
    )
    assert annotations_of(rendered, DASHBOARD_INGRESS)["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert annotations_of(rendered, FULLNAME)["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"


@pytest.mark.parametrize(
    "settings, expected",
    [
        (["tls.enabled=true"], "tls.enabled needs tls.secretName"),
        (["tls.enabled=true", "tls.secretName=x", "server.healthPort=46580"], "server.healthPort (46580)"),
        (["auth.initialAdmin.password=short"], "at least 8 characters"),
        (["auth.initialAdmin.username=a:b"], "without ':'"),
        (
            ["auth.initialServiceAccountToken.enabled=true", "auth.initialServiceAccountToken.value=sky_abc"],
            "64 lowercase hex digits",
        ),
        (["ingress.enabled=true"], "ingress.enabled needs ingress.host"),
        (
            ["tls.enabled=true", "tls.secretName=x", "tls.mountPath=/etc/skypilot/initial-auth"],
            "the initial credentials are mounted there",
        ),
        (["tls.enabled=true", "tls.secretName=x", "tls.mountPath=/etc/skypilot"], "must not be, contain or lie in"),
        (["server.logFormat=xml"], "server.logFormat must be json or text"),
        (["server.localInfra=on"], 'server.localInfra must be "off" or "shared-server-identity"'),
    ],
)
def test_unworkable_settings_refuse_to_render_with_a_reason(settings, expected):
    assert expected in render_error(set_values=settings)


def local_infra(rendered) -> str | None:
    return rendered.setting("--local-infra", "SKYPILOT_LOCAL_INFRA")


@pytest.mark.parametrize("variant", [v for v in ALL if v != "shared-server-identity"])
def test_the_local_infra_is_off_by_default(variant):
    # Jobs on it would run in the server's pod as the server's own user.
    rendered = render_variant(variant)
    assert rendered.environment()["SKYPILOT_LOCAL_INFRA"] == "off"
    assert local_infra(rendered) == "off"
    assert not any(arg.startswith("--local-infra") for arg in rendered.args)


def test_the_local_infra_sharing_the_servers_identity_renders():
    assert local_infra(render_variant("shared-server-identity")) == "shared-server-identity"
    rendered = render(set_values=["server.localInfra=shared-server-identity"])
    assert rendered.environment()["SKYPILOT_LOCAL_INFRA"] == "shared-server-identity"
    assert "shared-server-identity" in render_notes("shared-server-identity")


def test_an_unquoted_off_in_a_values_file_means_off(tmp_path):
    values = tmp_path / "off.yaml"
    values.write_text("server:\n  localInfra: off\n")  # YAML 1.1 reads this as false
    assert yaml.safe_load(values.read_text())["server"]["localInfra"] is False
    assert local_infra(render(values_files=[values])) == "off"
    assert local_infra(render(set_values=["server.localInfra=off"])) == "off"


@pytest.mark.parametrize("value", ["auto", "on", "true", '"Off"', "shared", "null", '""'])
def test_another_local_infra_refuses_to_render(value, tmp_path):
    values = tmp_path / "local-infra.yaml"
    values.write_text(f"server:\n  localInfra: {value}\n")
    message = render_error(values_files=[values])
    assert 'server.localInfra must be "off" or "shared-server-identity"' in message, message
    assert "as the server's own user" in message, message


def test_notes_say_where_jobs_run():
    notes = render_notes("default")
    assert 'server.localInfra: "off"' in notes and "runs no jobs in its own pod" in notes
    assert "WARNING" not in notes
    shared = render_notes("shared-server-identity")
    assert 'WARNING: server.localInfra is "shared-server-identity"' in shared
    assert "read the server's data, its credentials and each other's jobs" in shared


def test_a_settings_change_restarts_the_pod():
    def checksum(rendered):
        return rendered.statefulset["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render()) == checksum(render())
    assert checksum(render()) != checksum(render(set_values=["server.requestsRetentionHours=48"]))
    assert checksum(render()) != checksum(render(set_values=["server.localInfra=shared-server-identity"]))


@pytest.mark.parametrize("variant", ["default", "tls", "ingress", "initial-token"])
def test_notes_tell_how_to_read_the_credentials_and_log_in(variant):
    notes = render_notes(variant)
    assert f"get secret {FULLNAME}-initial-admin" in notes
    assert '"basic-auth" | base64decode' in notes
    assert "sky api login -e" in notes and "sky api info" in notes
    if variant == "ingress":
        assert 'sky api login -e "https://${SKY_ADMIN}@skypilot.example.test"' in notes
    else:
        assert f"port-forward svc/{FULLNAME} 46580:46580" in notes
        scheme = "https" if variant == "tls" else "http"
        assert f'sky api login -e "{scheme}://${{SKY_ADMIN}}@localhost:46580"' in notes
    assert ("service-account-token" in notes) == (variant == "initial-token")


@pytest.mark.parametrize(
    "variant, settings, url",
    [
        ("ingress", [], "https://skypilot.example.test/dashboard/"),
        ("ingress", ["ingress.tls.enabled=false"], "http://skypilot.example.test/dashboard/"),
        ("ingress", ["ingress.dashboard.enabled=false"], "https://skypilot.example.test/dashboard/"),
        ("default", [], "http://localhost:46580/dashboard/"),
        ("tls", [], "https://localhost:46580/dashboard/"),
        ("default", ["service.port=8443"], "http://localhost:8443/dashboard/"),
    ],
)
def test_notes_tell_where_the_dashboard_is(variant, settings, url):
    notes = render_notes(variant, set_values=settings)
    login = notes.index("sky api login -e")
    dashboard = notes.index("Open the dashboard")
    assert login < dashboard < notes.index("sky users set-password"), "the dashboard comes after the login"
    assert f"\n   {url}\n" in notes[dashboard:], notes
    assert "`sky dashboard`" in notes and "same credentials as `sky api login`" in notes
    if variant == "ingress":
        assert "port-forward" not in notes[dashboard:]
        if "ingress.dashboard.enabled=false" in settings:
            assert DASHBOARD_INGRESS not in notes and "ingress.dashboard.enabled is false" in notes
        else:
            assert f"Ingress {DASHBOARD_INGRESS}" in notes
    else:
        assert "port-forward of step 3" in notes and "Ingress" not in notes


def test_an_upgrade_keeps_the_generated_credentials():
    previous = {
        "username": "admin",
        "password": "KeptFromTheFirstInstall42",
        "service-account-token": "sky_" + "ab" * 32,
    }
    rendered = render_with_existing_secret(previous, set_values=["auth.initialServiceAccountToken.enabled=true"])
    assert rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH") == "admin:KeptFromTheFirstInstall42"
    token = rendered.file_setting("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")
    assert token == previous["service-account-token"]


def test_given_credentials_win_over_the_stored_ones():
    previous = {"username": "admin", "password": "KeptFromTheFirstInstall42"}
    rendered = render_with_existing_secret(previous, set_values=["auth.initialAdmin.password=NewlyGivenPassword"])
    assert rendered.file_setting("SKYPILOT_INITIAL_BASIC_AUTH") == "admin:NewlyGivenPassword"


SSH_DIR = "/etc/skypilot/ssh"
SSH_SECRET = "team-ssh-node-pools"
SLURM_DIR = "/etc/skypilot/slurm"
SLURM_SECRET = "team-slurm-clusters"


def test_ssh_node_pools_come_from_the_secret_mounted_read_only():
    rendered = render_variant("ssh-node-pools")
    container, pod = rendered.container, rendered.pod
    # The whole Secret, read-only, at the fixed folder: the pool file names the
    # private keys beside it by their paths there.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"].rstrip("/") == SSH_DIR]
    assert mount["readOnly"] is True and "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == SSH_SECRET
    assert "items" not in volume["secret"], "every key (the pool file and its keys) is mounted"
    assert not volume["secret"].get("optional"), "a missing Secret must keep the pod from starting"
    assert rendered.named("Secret", SSH_SECRET) is None, "the chart makes no Secret for the keys"

    # Readable by the server's uid through the group fsGroup, by no one else,
    # and never writable: the kubelet makes the files root's with that group.
    mode = volume["secret"]["defaultMode"]
    assert mode == 0o440, f"defaultMode {mode:o}"
    pod_context = pod["securityContext"]
    uid = container["securityContext"].get("runAsUser", pod_context.get("runAsUser"))
    assert uid not in (None, 0) and pod_context.get("fsGroup") is not None

    # The server gets the pool file's path, as a plain value.
    (entry,) = [e for e in container["env"] if e["name"] == "SKYPILOT_SSH_NODE_POOLS"]
    assert entry == {"name": "SKYPILOT_SSH_NODE_POOLS", "value": f"{SSH_DIR}/ssh_node_pools.yaml"}
    assert rendered.setting("--ssh-node-pools", "SKYPILOT_SSH_NODE_POOLS") == f"{SSH_DIR}/ssh_node_pools.yaml"
    assert rendered.file_setting("SKYPILOT_SSH_NODE_POOLS") == SecretRef(SSH_SECRET, "ssh_node_pools.yaml")
    mounted = rendered.mounted_file(f"{SSH_DIR}/lab-key")
    assert mounted is not None and mounted.read_only and mounted.mode == 0o440
    assert mounted.content == SecretRef(SSH_SECRET, "lab-key")


def test_the_pool_files_key_can_be_chosen():
    rendered = render(set_values=[f"ssh.nodePoolsSecret={SSH_SECRET}", "ssh.nodePoolsKey=pools.yaml"])
    assert rendered.environment()["SKYPILOT_SSH_NODE_POOLS"] == f"{SSH_DIR}/pools.yaml"
    assert rendered.file_setting("SKYPILOT_SSH_NODE_POOLS") == SecretRef(SSH_SECRET, "pools.yaml")


@pytest.mark.parametrize("variant", [v for v in ALL if v != "ssh-node-pools"])
def test_no_ssh_node_pools_by_default(variant):
    rendered = render_variant(variant)
    assert "SKYPILOT_SSH_NODE_POOLS" not in rendered.environment()
    assert rendered.arg("--ssh-node-pools") is None
    mounts = [m for m in rendered.container["volumeMounts"] if m["mountPath"].startswith(SSH_DIR)]
    assert not mounts, mounts
    assert "ssh-node-pools" not in {volume["name"] for volume in rendered.pod["volumes"]}
    # Only the listed keys of the credentials' Secrets are mounted (and the
    # whole Secret of the Slurm clusters, when they are given).
    assert set(rendered.secret_dirs()) <= {SLURM_DIR}, rendered.secret_dirs()


@pytest.mark.parametrize("extra", [(), ("tls.yaml",), ("shared-server-identity.yaml",)])
def test_private_keys_reach_the_server_only_as_files(extra):
    # The chart never holds the keys: they stay in the Secret, which only a
    # volume uses; no ConfigMap, environment value or argument carries them.
    rendered = render("ssh-node-pools", values_files=extra)
    container = rendered.container
    for entry in container.get("env", []):
        assert "secretKeyRef" not in entry.get("valueFrom", {}), entry["name"]
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, source
    ssh_env = {name: value for name, value in rendered.environment().items() if "SSH" in name}
    assert ssh_env == {"SKYPILOT_SSH_NODE_POOLS": f"{SSH_DIR}/ssh_node_pools.yaml"}
    uses = [v for v in rendered.pod["volumes"] if v.get("secret", {}).get("secretName") == SSH_SECRET]
    assert [v["name"] for v in uses] == ["ssh-node-pools"]
    for config in rendered.all("ConfigMap"):
        text = yaml.safe_dump(config.get("data") or {})
        assert SSH_SECRET not in text and "PRIVATE KEY" not in text and "identity_file" not in text
        assert "SKYPILOT_SSH_NODE_POOLS" not in (config.get("data") or {})
    assert not any("PRIVATE KEY" in arg or arg.startswith("--ssh") for arg in rendered.args)


def test_ssh_node_pools_render_with_tls():
    rendered = render("ssh-node-pools", values_files=["tls.yaml"])
    paths = {m["mountPath"] for m in rendered.container["volumeMounts"]}
    assert {SSH_DIR, "/etc/skypilot/tls", AUTH_DIR} <= paths


@pytest.mark.parametrize(
    "settings, expected",
    [
        (
            [f"ssh.nodePoolsSecret={SSH_SECRET}", "tls.enabled=true", "tls.secretName=x", f"tls.mountPath={SSH_DIR}"],
            "the SSH node pools are mounted there",
        ),
        (
            [
                f"ssh.nodePoolsSecret={SSH_SECRET}",
                "tls.enabled=true",
                "tls.secretName=x",
                f"tls.mountPath={SSH_DIR}/tls",
            ],
            "the SSH node pools are mounted there",
        ),
        ([f"ssh.nodePoolsSecret={SSH_SECRET}", "ssh.nodePoolsKey=../pools.yaml"], "ssh.nodePoolsKey must be"),
        ([f"ssh.nodePoolsSecret={SSH_SECRET}", "ssh.nodePoolsKey=a/b"], "ssh.nodePoolsKey must be"),
        ([f"ssh.nodePoolsSecret={SSH_SECRET}", "ssh.nodePoolsKey="], "ssh.nodePoolsKey must be"),
        (["ssh.nodePoolsSecret=Team_SSH"], "ssh.nodePoolsSecret must be the name of a Secret"),
    ],
)
def test_unworkable_ssh_settings_refuse_to_render_with_a_reason(settings, expected):
    message = render_error(set_values=settings)
    assert expected in message, message


def test_the_tls_folder_may_sit_beside_the_ssh_folder_without_pools():
    rendered = render(set_values=["tls.enabled=true", "tls.secretName=x", f"tls.mountPath={SSH_DIR}"])
    assert rendered.arg("--tls-cert") == f"{SSH_DIR}/tls.crt"


def test_notes_tell_how_to_check_the_ssh_node_pools():
    notes = render_notes("ssh-node-pools")
    assert SSH_SECRET in notes and "sky check ssh" in notes
    assert "/var/lib/skypilot/ssh/known_hosts" in notes and "rollout restart" in notes
    assert "SSH node pools" not in render_notes("default")
    shared = render_notes("ssh-node-pools", set_values=["server.localInfra=shared-server-identity"])
    assert "private keys of the SSH" in shared
    assert "private keys" not in render_notes("shared-server-identity")


def test_slurm_clusters_come_from_the_secret_mounted_read_only():
    rendered = render_variant("slurm-clusters")
    container, pod = rendered.container, rendered.pod
    # The whole Secret, read-only, at the fixed folder: the configuration's
    # IdentityFile lines name the private keys beside it by their paths there.
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"].rstrip("/") == SLURM_DIR]
    assert mount["readOnly"] is True and "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == SLURM_SECRET
    assert "items" not in volume["secret"], "every key (the configuration and its keys) is mounted"
    assert not volume["secret"].get("optional"), "a missing Secret must keep the pod from starting"
    assert rendered.named("Secret", SLURM_SECRET) is None, "the chart makes no Secret for the keys"

    # As for the SSH node pools: readable by the server's uid through the
    # group fsGroup, by no one else, and never writable.
    mode = volume["secret"]["defaultMode"]
    assert mode == 0o440, f"defaultMode {mode:o}"
    pod_context = pod["securityContext"]
    uid = container["securityContext"].get("runAsUser", pod_context.get("runAsUser"))
    assert uid not in (None, 0) and pod_context.get("fsGroup") is not None

    # The server gets the configuration's path, as a plain value.
    (entry,) = [e for e in container["env"] if e["name"] == "SKYPILOT_SLURM_CONFIG"]
    assert entry == {"name": "SKYPILOT_SLURM_CONFIG", "value": f"{SLURM_DIR}/config"}
    assert rendered.setting("--slurm-config", "SKYPILOT_SLURM_CONFIG") == f"{SLURM_DIR}/config"
    assert rendered.file_setting("SKYPILOT_SLURM_CONFIG") == SecretRef(SLURM_SECRET, "config")
    mounted = rendered.mounted_file(f"{SLURM_DIR}/hpc-key")
    assert mounted is not None and mounted.read_only and mounted.mode == 0o440
    assert mounted.content == SecretRef(SLURM_SECRET, "hpc-key")


def test_the_slurm_configurations_key_can_be_chosen():
    rendered = render(set_values=[f"slurm.configSecret={SLURM_SECRET}", "slurm.configKey=slurm-config"])
    assert rendered.environment()["SKYPILOT_SLURM_CONFIG"] == f"{SLURM_DIR}/slurm-config"
    assert rendered.file_setting("SKYPILOT_SLURM_CONFIG") == SecretRef(SLURM_SECRET, "slurm-config")


@pytest.mark.parametrize("variant", [v for v in ALL if v != "slurm-clusters"])
def test_no_slurm_clusters_by_default(variant):
    rendered = render_variant(variant)
    assert "SKYPILOT_SLURM_CONFIG" not in rendered.environment()
    assert rendered.arg("--slurm-config") is None
    mounts = [m for m in rendered.container["volumeMounts"] if m["mountPath"].startswith(SLURM_DIR)]
    assert not mounts, mounts
    assert "slurm-clusters" not in {volume["name"] for volume in rendered.pod["volumes"]}
    # Only the listed keys of the credentials' Secrets are mounted (and the
    # whole Secret of the SSH node pools, when they are given).
    assert set(rendered.secret_dirs()) <= {SSH_DIR}, rendered.secret_dirs()
    assert "slurm" not in rendered.text.lower(), "nothing Slurm-related renders without slurm.configSecret"


@pytest.mark.parametrize("extra", [(), ("tls.yaml",), ("shared-server-identity.yaml",)])
def test_slurm_private_keys_reach_the_server_only_as_files(extra):
    # The chart never holds the keys: they stay in the Secret, which only a
    # volume uses; no ConfigMap, environment value or argument carries them.
    rendered = render("slurm-clusters", values_files=extra)
    container = rendered.container
    for entry in container.get("env", []):
        assert "secretKeyRef" not in entry.get("valueFrom", {}), entry["name"]
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, source
    slurm_env = {name: value for name, value in rendered.environment().items() if "SLURM" in name}
    assert slurm_env == {"SKYPILOT_SLURM_CONFIG": f"{SLURM_DIR}/config"}
    uses = [v for v in rendered.pod["volumes"] if v.get("secret", {}).get("secretName") == SLURM_SECRET]
    assert [v["name"] for v in uses] == ["slurm-clusters"]
    for config in rendered.all("ConfigMap"):
        text = yaml.safe_dump(config.get("data") or {})
        assert SLURM_SECRET not in text and "PRIVATE KEY" not in text and "IdentityFile" not in text
        assert "SKYPILOT_SLURM_CONFIG" not in (config.get("data") or {})
    assert not any("PRIVATE KEY" in arg or arg.startswith("--slurm") for arg in rendered.args)


def test_slurm_clusters_render_with_tls_and_ssh_node_pools():
    rendered = render("slurm-clusters", values_files=["tls.yaml", "ssh-node-pools.yaml"])
    paths = {m["mountPath"] for m in rendered.container["volumeMounts"]}
    assert {SLURM_DIR, SSH_DIR, "/etc/skypilot/tls", AUTH_DIR} <= paths
    # Two Secrets, two folders: neither's files shadow the other's.
    dirs = rendered.secret_dirs()
    assert (dirs[SLURM_DIR].secret, dirs[SSH_DIR].secret) == (SLURM_SECRET, SSH_SECRET)
    env = rendered.environment()
    assert env["SKYPILOT_SLURM_CONFIG"] == f"{SLURM_DIR}/config"
    assert env["SKYPILOT_SSH_NODE_POOLS"] == f"{SSH_DIR}/ssh_node_pools.yaml"


@pytest.mark.parametrize(
    "settings, expected",
    [
        (
            [
                f"slurm.configSecret={SLURM_SECRET}",
                "tls.enabled=true",
                "tls.secretName=x",
                f"tls.mountPath={SLURM_DIR}",
            ],
            "the Slurm configuration is mounted there",
        ),
        (
            [
                f"slurm.configSecret={SLURM_SECRET}",
                "tls.enabled=true",
                "tls.secretName=x",
                f"tls.mountPath={SLURM_DIR}/tls",
            ],
            "the Slurm configuration is mounted there",
        ),
        ([f"slurm.configSecret={SLURM_SECRET}", "slurm.configKey=../config"], "slurm.configKey must be"),
        ([f"slurm.configSecret={SLURM_SECRET}", "slurm.configKey=a/b"], "slurm.configKey must be"),
        ([f"slurm.configSecret={SLURM_SECRET}", "slurm.configKey="], "slurm.configKey must be"),
        (["slurm.configSecret=Team_Slurm"], "slurm.configSecret must be the name of a Secret"),
    ],
)
def test_unworkable_slurm_settings_refuse_to_render_with_a_reason(settings, expected):
    message = render_error(set_values=settings)
    assert expected in message, message


def test_the_tls_folder_may_sit_beside_the_slurm_folder_without_clusters():
    rendered = render(set_values=["tls.enabled=true", "tls.secretName=x", f"tls.mountPath={SLURM_DIR}"])
    assert rendered.arg("--tls-cert") == f"{SLURM_DIR}/tls.crt"


def test_notes_tell_how_to_check_the_slurm_clusters():
    notes = render_notes("slurm-clusters")
    assert SLURM_SECRET in notes and "sky check slurm" in notes
    assert "/var/lib/skypilot/slurm/ssh/known_hosts" in notes and "rollout restart" in notes
    assert "\n6. The Slurm clusters" in notes
    assert "Slurm" not in render_notes("default")
    both = render_notes("slurm-clusters", set_values=[f"ssh.nodePoolsSecret={SSH_SECRET}"])
    assert "\n6. The SSH node pools" in both and "\n7. The Slurm clusters" in both
    shared = render_notes("slurm-clusters", set_values=["server.localInfra=shared-server-identity"])
    assert "private keys of the Slurm" in shared
    everything = render_notes(
        "slurm-clusters", set_values=[f"ssh.nodePoolsSecret={SSH_SECRET}", "server.localInfra=shared-server-identity"]
    )
    assert "private keys of the SSH" in everything and "and of the Slurm clusters' login nodes" in everything
    assert "Slurm" not in render_notes("shared-server-identity")


METRICS_PORT = 46582
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(METRICS_PORT),
    "prometheus.io/path": "/metrics",
}


def metrics_port(rendered) -> str | None:
    return rendered.setting("--metrics-port", "SKYPILOT_METRICS_PORT")


def port_names(ports) -> set[str]:
    return {port["name"] for port in ports}


def pod_annotations(rendered) -> dict:
    return rendered.statefulset["spec"]["template"]["metadata"]["annotations"]


def scrape_annotations(annotations) -> dict:
    return {key: value for key, value in (annotations or {}).items() if key.startswith("prometheus.io/")}


@pytest.mark.parametrize("variant", [v for v in ALL if v != "metrics"])
def test_no_metrics_listener_by_default(variant):
    # The metrics port answers without credentials: it opens only when asked for.
    rendered = render_variant(variant)
    assert metrics_port(rendered) is None
    assert "metrics" not in port_names(rendered.container["ports"])
    for service in rendered.all("Service"):
        assert "metrics" not in port_names(service["spec"]["ports"]), service["metadata"]["name"]
        assert not scrape_annotations(service["metadata"].get("annotations")), service["metadata"]["name"]
    assert not scrape_annotations(pod_annotations(rendered))
    assert not rendered.all("ServiceMonitor")
    text = rendered.text.lower()
    assert "metrics" not in text and "prometheus" not in text, "nothing metrics-related renders by default"


def test_the_metrics_listener_is_a_named_port_of_the_container_and_the_service():
    rendered = render_variant("metrics")
    server_port = int(rendered.arg("--port"))
    # A plain setting from the ConfigMap, like the health port.
    assert rendered.arg("--metrics-port") is None
    assert rendered.environment()["SKYPILOT_METRICS_PORT"] == str(METRICS_PORT)
    ports = {port["name"]: port for port in rendered.container["ports"]}
    assert ports["metrics"] == {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
    assert len({port["containerPort"] for port in ports.values()}) == len(ports)
    service = rendered.named("Service", FULLNAME)
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert set(service_ports) == {"grpc", "metrics"}
    assert service_ports["metrics"] == {
        "name": "metrics",
        "port": METRICS_PORT,
        "targetPort": "metrics",
        "protocol": "TCP",
        "appProtocol": "http",
    }
    # The headless Service stays gRPC only: a ServiceMonitor finds no metrics port there.
    headless = rendered.named("Service", rendered.statefulset["spec"]["serviceName"])
    assert port_names(headless["spec"]["ports"]) == {"grpc"}
    # The probes stay where they were.
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert rendered.container[kind]["grpc"]["port"] == server_port, kind


def test_the_scrape_annotations_name_the_metrics_port():
    rendered = render_variant("metrics")
    service = rendered.named("Service", FULLNAME)
    for annotations in (pod_annotations(rendered), service["metadata"]["annotations"]):
        assert scrape_annotations(annotations) == SCRAPE_ANNOTATIONS
        assert all(isinstance(value, str) for value in annotations.values()), annotations
    assert "checksum/config" in pod_annotations(rendered)
    headless = rendered.named("Service", f"{FULLNAME}-headless")
    assert not headless["metadata"].get("annotations")


def test_the_metrics_port_can_move_and_the_annotations_follow_it():
    rendered = render(set_values=["metrics.enabled=true", "metrics.port=9100"])
    assert rendered.environment()["SKYPILOT_METRICS_PORT"] == "9100"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in rendered.container["ports"]
    service = rendered.named("Service", FULLNAME)
    assert {port["name"]: port["port"] for port in service["spec"]["ports"]} == {"grpc": 46580, "metrics": 9100}
    expected = dict(SCRAPE_ANNOTATIONS, **{"prometheus.io/port": "9100"})
    assert scrape_annotations(pod_annotations(rendered)) == expected
    assert scrape_annotations(service["metadata"]["annotations"]) == expected
    assert not rendered.all("ServiceMonitor"), "no ServiceMonitor unless asked for"


def test_the_scrape_annotations_can_be_left_out():
    rendered = render("metrics", set_values=["metrics.annotations=false"])
    assert rendered.environment()["SKYPILOT_METRICS_PORT"] == str(METRICS_PORT)
    assert not scrape_annotations(pod_annotations(rendered))
    assert not rendered.named("Service", FULLNAME)["metadata"].get("annotations")
    assert rendered.one("ServiceMonitor")


def test_given_annotations_win_over_the_scrape_annotations():
    rendered = render(
        "metrics",
        set_values=[
            "podAnnotations.prometheus\\.io/scrape=false",
            "podAnnotations.team=ml",
            "service.annotations.prometheus\\.io/path=/other",
            "service.annotations.lb=internal",
        ],
    )
    pod = pod_annotations(rendered)
    assert pod["prometheus.io/scrape"] == "false" and pod["team"] == "ml"
    assert pod["prometheus.io/port"] == str(METRICS_PORT)
    service = rendered.named("Service", FULLNAME)["metadata"]["annotations"]
    assert service["prometheus.io/path"] == "/other" and service["lb"] == "internal"
    assert service["prometheus.io/scrape"] == "true"


def test_a_service_monitor_scrapes_the_services_metrics_port():
    rendered = render_variant("metrics")
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == FULLNAME
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s"}
    # Of the Services it selects, only the chart's own has the named port, so
    # only that one gives Prometheus targets; they are the server's pod.
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        service
        for service in rendered.all("Service")
        if all(service["metadata"]["labels"].get(key) == value for key, value in selector.items())
    ]
    targets = [service for service in selected if "metrics" in port_names(service["spec"]["ports"])]
    assert [service["metadata"]["name"] for service in targets] == [FULLNAME]
    pod_labels = rendered.statefulset["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(key) == value for key, value in targets[0]["spec"]["selector"].items())


def test_the_metrics_listener_renders_beside_tls():
    rendered = render("tls", values_files=["metrics.yaml"])
    ports = {port["name"]: port["containerPort"] for port in rendered.container["ports"]}
    assert ports == {"grpc": 46580, "health": 46581, "metrics": METRICS_PORT}
    env = rendered.environment()
    assert (env["SKYPILOT_HEALTH_PORT"], env["SKYPILOT_METRICS_PORT"]) == ("46581", str(METRICS_PORT))
    assert rendered.container["readinessProbe"]["grpc"]["port"] == 46581


def test_turning_metrics_on_restarts_the_pod():
    def checksum(rendered):
        return pod_annotations(rendered)["checksum/config"]

    assert checksum(render()) != checksum(render(set_values=["metrics.enabled=true"]))


def test_a_disabled_metrics_port_is_not_checked():
    # Without metrics.enabled the port opens nowhere, so it cannot clash.
    rendered = render(set_values=["metrics.port=46580"])
    assert metrics_port(rendered) is None
    # Without TLS the health port is not opened either.
    rendered = render(set_values=["metrics.enabled=true", "metrics.port=46581"])
    assert metrics_port(rendered) == "46581"


@pytest.mark.parametrize(
    "settings, expected",
    [
        (["metrics.port=46580"], "metrics.port (46580) must differ from server.port (46580)"),
        (["server.port=7000", "metrics.port=7000"], "metrics.port (7000) must differ from server.port (7000)"),
        (
            ["tls.enabled=true", "tls.secretName=x", "metrics.port=46581"],
            "metrics.port (46581) must differ from server.healthPort (46581): with TLS on",
        ),
        (["service.port=46582"], "metrics.port (46582) must differ from service.port (46582): the Service exposes both"),
        (["metrics.port=0"], "metrics.port must be a port number (1-65535), got 0"),
        (["metrics.port=65536"], "metrics.port must be a port number (1-65535), got 65536"),
        (["metrics.port=http"], "metrics.port must be a port number (1-65535), got http"),
    ],
)
def test_a_clashing_metrics_port_refuses_to_render_with_a_reason(settings, expected):
    message = render_error(set_values=["metrics.enabled=true", *settings])
    assert expected in message, message


def test_a_service_monitor_needs_the_metrics_listener():
    message = render_error(set_values=["metrics.serviceMonitor.enabled=true"])
    assert "metrics.serviceMonitor.enabled needs metrics.enabled" in message, message
