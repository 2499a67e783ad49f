{{/*
The chart name, possibly overridden.
*/}}
{{- define "skypilot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources. At most 52 characters: the
StatefulSet's controller-revision-hash label adds a suffix to it and labels stop
at 63.
*/}}
{{- define "skypilot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "skypilot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "skypilot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skypilot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "skypilot.labels" -}}
helm.sh/chart: {{ include "skypilot.chart" . }}
{{ include "skypilot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: api-server
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The Secret holding the initial credentials: the chart's own or an existing one.
*/}}
{{- define "skypilot.secretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-initial-admin" (include "skypilot.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Where the Secret's initial credentials are mounted, read-only, as the files
basic-auth and service-account-token; the server's SKYPILOT_INITIAL_* variables
hold their paths (never the credentials: see templates/statefulset.yaml).
*/}}
{{- define "skypilot.initialAuthDir" -}}
/etc/skypilot/initial-auth
{{- end }}

{{/*
Where the Secret of `ssh.nodePoolsSecret` is mounted, read-only, every key as a
file of its name: the pool file (whose path SKYPILOT_SSH_NODE_POOLS holds) and
the private keys it names by their paths here.
*/}}
{{- define "skypilot.sshDir" -}}
/etc/skypilot/ssh
{{- end }}

{{/*
Where the Secret of `slurm.configSecret` is mounted, read-only, every key as a
file of its name: the Slurm configuration (whose path SKYPILOT_SLURM_CONFIG
holds) and the private keys its IdentityFile lines name by their paths here.
*/}}
{{- define "skypilot.slurmDir" -}}
/etc/skypilot/slurm
{{- end }}

{{/*
The server's HOME inside the image (the `sky` user's home): an emptyDir, since
the root filesystem is read-only.
*/}}
{{- define "skypilot.home" -}}
/home/sky
{{- end }}

{{/*
The port the gRPC probes use: the plaintext health listener when the main port
speaks TLS (kubelet's gRPC probes cannot), else the main port.
*/}}
{{- define "skypilot.probePort" -}}
{{- if .Values.tls.enabled }}
{{- .Values.server.healthPort | int }}
{{- else }}
{{- .Values.server.port | int }}
{{- end }}
{{- end }}

{{/*
The server's local infra setting (SKYPILOT_LOCAL_INFRA): "off" or
"shared-server-identity". An unquoted `off` in a values file is YAML's false,
which means "off" too; anything else is left as given for skypilot.validate to
refuse.
*/}}
{{- define "skypilot.localInfra" -}}
{{- $value := .Values.server.localInfra }}
{{- if and (kindIs "bool" $value) (not $value) }}
{{- "off" }}
{{- else }}
{{- toString $value }}
{{- end }}
{{- end }}

{{/*
The scrape annotations of `metrics.annotations` merged with `extra` (the
user's podAnnotations or service.annotations, which win): a dict, empty when
there is nothing to add. Called with (dict "root" $ "extra" MAP).
*/}}
{{- define "skypilot.metricsAnnotations" -}}
{{- $values := .root.Values }}
{{- $annotations := dict }}
{{- if and $values.metrics.enabled $values.metrics.annotations }}
{{- $_ := set $annotations "prometheus.io/scrape" "true" }}
{{- $_ := set $annotations "prometheus.io/port" ($values.metrics.port | int | toString) }}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" }}
{{- end }}
{{- toYaml (mergeOverwrite $annotations (.extra | default dict)) }}
{{- end }}

{{- define "skypilot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Refuses settings that cannot work, with a message that says what to change.
*/}}
{{- define "skypilot.validate" -}}
{{- $grace := int .Values.server.shutdownGraceSeconds }}
{{- $termination := int .Values.terminationGracePeriodSeconds }}
{{- if lt $grace 0 }}
{{- fail (printf "server.shutdownGraceSeconds must not be negative (got %d)" $grace) }}
{{- end }}
{{- if lt $termination (add $grace 5 | int) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed server.shutdownGraceSeconds (%d) by at least 5 seconds: Kubernetes kills the pod when terminationGracePeriodSeconds runs out, and the server needs its drain grace plus a few seconds to flush its store. Raise terminationGracePeriodSeconds to at least %d or lower server.shutdownGraceSeconds." $termination $grace (add $grace 5)) }}
{{- end }}
{{- $port := int .Values.server.port }}
{{- if or (lt $port 1) (gt $port 65535) }}
{{- fail (printf "server.port must be a port number (1-65535), got %v" .Values.server.port) }}
{{- end }}
{{- if not (has .Values.server.logFormat (list "json" "text")) }}
{{- fail (printf "server.logFormat must be json or text, got %q" (toString .Values.server.logFormat)) }}
{{- end }}
{{- if not (has (include "skypilot.localInfra" .) (list "off" "shared-server-identity")) }}
{{- fail (printf "server.localInfra must be \"off\" or \"shared-server-identity\", got %q. \"off\" (the default) runs no jobs in the server's pod; \"shared-server-identity\" runs every user's jobs inside the server's pod as the server's own user, where they can read its data, its credentials and each other's jobs: set it only knowingly, for a trusted team." (include "skypilot.localInfra" .)) }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- if not .Values.tls.secretName }}
{{- fail "tls.enabled needs tls.secretName: a Secret of type kubernetes.io/tls with tls.crt and tls.key" }}
{{- end }}
{{- $tlsDir := trimSuffix "/" (toString .Values.tls.mountPath) }}
{{- $authDir := include "skypilot.initialAuthDir" . }}
{{- if or (eq $tlsDir $authDir) (hasPrefix (printf "%s/" $tlsDir) $authDir) (hasPrefix (printf "%s/" $authDir) $tlsDir) }}
{{- fail (printf "tls.mountPath (%s) must not be, contain or lie in %s: the initial credentials are mounted there" (toString .Values.tls.mountPath) $authDir) }}
{{- end }}
{{- if .Values.ssh.nodePoolsSecret }}
{{- $sshDir := include "skypilot.sshDir" . }}
{{- if or (eq $tlsDir $sshDir) (hasPrefix (printf "%s/" $tlsDir) $sshDir) (hasPrefix (printf "%s/" $sshDir) $tlsDir) }}
{{- fail (printf "tls.mountPath (%s) must not be, contain or lie in %s: the SSH node pools are mounted there" (toString .Values.tls.mountPath) $sshDir) }}
{{- end }}
{{- end }}
{{- if .Values.slurm.configSecret }}
{{- $slurmDir := include "skypilot.slurmDir" . }}
{{- if or (eq $tlsDir $slurmDir) (hasPrefix (printf "%s/" $tlsDir) $slurmDir) (hasPrefix (printf "%s/" $slurmDir) $tlsDir) }}
{{- fail (printf "tls.mountPath (%s) must not be, contain or lie in %s: the Slurm configuration is mounted there" (toString .Values.tls.mountPath) $slurmDir) }}
{{- end }}
{{- end }}
{{- $health := int .Values.server.healthPort }}
{{- if or (lt $health 1) (gt $health 65535) (eq $health $port) }}
{{- fail (printf "server.healthPort (%v) must be a port number other than server.port (%d): with TLS on, the probes use this plaintext health listener" .Values.server.healthPort $port) }}
{{- end }}
{{- end }}
{{- if not .Values.auth.existingSecret }}
{{- $user := toString .Values.auth.initialAdmin.username }}
{{- if or (eq $user "") (contains ":" $user) }}
{{- fail (printf "auth.initialAdmin.username must be a non-empty name without ':', got %q" $user) }}
{{- end }}
{{- $password := toString (.Values.auth.initialAdmin.password | default "") }}
{{- if and $password (lt (len $password) 8) }}
{{- fail "auth.initialAdmin.password must have at least 8 characters (or leave it empty to have one generated)" }}
{{- end }}
{{- $token := toString (.Values.auth.initialServiceAccountToken.value | default "") }}
{{- if and .Values.auth.initialServiceAccountToken.enabled $token (not (regexMatch "^sky_[0-9a-f]{64}$" $token)) }}
{{- fail "auth.initialServiceAccountToken.value must be \"sky_\" followed by 64 lowercase hex digits (or leave it empty to have one generated)" }}
{{- end }}
{{- end }}
{{- if .Values.metrics.enabled }}
{{- $metrics := int .Values.metrics.port }}
{{- if or (lt $metrics 1) (gt $metrics 65535) }}
{{- fail (printf "metrics.port must be a port number (1-65535), got %v" .Values.metrics.port) }}
{{- end }}
{{- if eq $metrics $port }}
{{- fail (printf "metrics.port (%d) must differ from server.port (%d): the metrics listener is a second listener of its own, without credentials" $metrics $port) }}
{{- end }}
{{- if and .Values.tls.enabled (eq $metrics (int .Values.server.healthPort)) }}
{{- fail (printf "metrics.port (%d) must differ from server.healthPort (%d): with TLS on, the probes' plaintext health listener uses that port" $metrics (int .Values.server.healthPort)) }}
{{- end }}
{{- if eq $metrics (int .Values.service.port) }}
{{- fail (printf "metrics.port (%d) must differ from service.port (%d): the Service exposes both" $metrics (int .Values.service.port)) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled: the ServiceMonitor scrapes the Service's metrics port, which only metrics.enabled opens" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.enabled needs ingress.host" }}
{{- end }}
{{- with .Values.ssh.nodePoolsSecret }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" (toString .)) }}
{{- fail (printf "ssh.nodePoolsSecret must be the name of a Secret (lowercase letters, digits, '-' and '.'), got %q" (toString .)) }}
{{- end }}
{{- end }}
{{- if .Values.ssh.nodePoolsSecret }}
{{- $key := toString (.Values.ssh.nodePoolsKey | default "") }}
{{- if or (not (regexMatch "^[-._a-zA-Z0-9]+$" $key)) (eq $key ".") (eq $key "..") (hasPrefix ".." $key) }}
{{- fail (printf "ssh.nodePoolsKey must be the key of ssh.nodePoolsSecret that holds the pool file (letters, digits, '-', '_' and '.', not starting with \"..\"), got %q" $key) }}
{{- end }}
{{- end }}
{{- with .Values.slurm.configSecret }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" (toString .)) }}
{{- fail (printf "slurm.configSecret must be the name of a Secret (lowercase letters, digits, '-' and '.'), got %q" (toString .)) }}
{{- end }}
{{- end }}
{{- if .Values.slurm.configSecret }}
{{- $key := toString (.Values.slurm.configKey | default "") }}
{{- if or (not (regexMatch "^[-._a-zA-Z0-9]+$" $key)) (eq $key ".") (eq $key "..") (hasPrefix ".." $key) }}
{{- fail (printf "slurm.configKey must be the key of slurm.configSecret that holds the Slurm configuration (letters, digits, '-', '_' and '.', not starting with \"..\"), got %q" $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A map of annotations with every value a string (the API rejects others).
*/}}
{{- define "skypilot.annotations" -}}
{{- $lines := list }}
{{- range $key, $value := . }}
{{- $lines = append $lines (printf "%s: %s" $key ($value | toString | quote)) }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}
