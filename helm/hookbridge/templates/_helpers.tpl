{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "hookbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it already holds it. */}}
{{- define "hookbridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hookbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hookbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hookbridge.labels" -}}
helm.sh/chart: {{ include "hookbridge.chart" . }}
{{ include "hookbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hookbridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/* drainTimeoutSeconds as an integer, validated. */}}
{{- define "hookbridge.drainTimeoutSeconds" -}}
{{- $drain := int .Values.drainTimeoutSeconds }}
{{- if lt $drain 1 }}
{{- fail "drainTimeoutSeconds must be a positive number of seconds" }}
{{- end }}
{{- $drain }}
{{- end }}

{{/* The pod's grace period: the preStop sleep, then the whole drain, then 10s of slack. */}}
{{- define "hookbridge.terminationGracePeriodSeconds" -}}
{{- add (int .Values.preStopSleepSeconds) (include "hookbridge.drainTimeoutSeconds" . | int) 10 }}
{{- end }}

{{/* The smallest number of pods the deployment runs (decides whether a PDB makes sense). */}}
{{- define "hookbridge.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- int .Values.autoscaling.minReplicas }}
{{- else }}
{{- int .Values.replicaCount }}
{{- end }}
{{- end }}

{{/*
The settings (hookbridge.toml) as JSON: .Values.config plus the keys the chart owns.
*/}}
{{- define "hookbridge.settings" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- range $owned := list "connectors_dir" }}
{{- if hasKey $cfg $owned }}
{{- fail (printf "config.%s is set by the chart; remove it from config" $owned) }}
{{- end }}
{{- end }}
{{- $owned := dict "kafka" (list "brokers") "http" (list "listen") "admin" (list "listen") "shutdown" (list "drain_timeout") }}
{{- range $table, $keys := $owned }}
{{- if not (hasKey $cfg $table) }}
{{- $_ := set $cfg $table dict }}
{{- end }}
{{- $t := get $cfg $table }}
{{- if not (kindIs "map" $t) }}
{{- fail (printf "config.%s must be a map (a TOML table)" $table) }}
{{- end }}
{{- range $key := $keys }}
{{- if hasKey $t $key }}
{{- fail (printf "config.%s.%s is set by the chart (see values.yaml: kafka.brokers, containerPorts, drainTimeoutSeconds); remove it from config" $table $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "connectors_dir" "connectors" }}
{{- $_ := set (get $cfg "kafka") "brokers" (include "hookbridge.brokers" .) }}
{{- $bind := include "hookbridge.bindAddress" . }}
{{- $_ := set (get $cfg "http") "listen" (printf "%s:%d" $bind (int .Values.containerPorts.http)) }}
{{- $_ := set (get $cfg "admin") "listen" (printf "%s:%d" $bind (int .Values.containerPorts.admin)) }}
{{- include "hookbridge.noLiteralSecrets" $cfg }}
{{- $_ := set (get $cfg "shutdown") "drain_timeout" (printf "%ss" (include "hookbridge.drainTimeoutSeconds" .)) }}
{{- toJson $cfg }}
{{- end }}

{{/* bindAddress as a listen address takes it: an IPv6 address ("::") in brackets. */}}
{{- define "hookbridge.bindAddress" -}}
{{- $a := .Values.bindAddress | toString }}
{{- if and (contains ":" $a) (not (hasPrefix "[" $a)) }}[{{ $a }}]{{ else }}{{ $a }}{{ end }}
{{- end }}

{{/*
Refuses a secret written into config as it is: the settings go into a ConfigMap, which
anyone who can read the namespace's ConfigMaps reads. The keys hookbridge check warns
about: admin.console.token and kafka.properties whose name says password, passphrase,
secret, jaas, key.pem or sasl.oauthbearer.config. "${ENV_VAR}" (from secretEnv) and
"file:/path" (a mounted Secret) are references.
*/}}
{{- define "hookbridge.noLiteralSecrets" -}}
{{- $secrets := list }}
{{- $console := get (get . "admin" | default dict) "console" | default dict }}
{{- if kindIs "map" $console }}
{{- if hasKey $console "token" }}
{{- $secrets = append $secrets (list "admin.console.token" (get $console "token")) }}
{{- end }}
{{- end }}
{{- $props := get (get . "kafka") "properties" | default dict }}
{{- if kindIs "map" $props }}
{{- range $k, $v := $props }}
{{- if regexMatch "(?i)password|passphrase|secret|jaas|key\\.pem|sasl\\.oauthbearer\\.config" $k }}
{{- $secrets = append $secrets (list (printf "kafka.properties.%s" $k) $v) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $s := $secrets }}
{{- $v := index $s 1 | toString }}
{{- if and (not (kindIs "invalid" (index $s 1))) (not (or (regexMatch "^\\$\\{[^}]+\\}$" $v) (hasPrefix "file:" $v))) }}
{{- fail (printf "config.%s holds a literal secret, which would be stored in a ConfigMap: write \"${ENV_VAR}\" and add the variable to secretEnv, or \"file:/path\" to a mounted Secret" (index $s 0)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A TOML key: bare when it can be, else a quoted (JSON-escaped, TOML-compatible) string. */}}
{{- define "hookbridge.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/*
A TOML value. Values arrive from YAML/JSON with every number as float64, which Helm's
toToml would print as 1024.0 (rejected where hookbridge expects an integer), so whole
numbers are written as integers here.
*/}}
{{- define "hookbridge.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) }}
{{- if eq (float64 $v) (float64 (int64 $v)) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) }}{{ $v }}
{{- else if kindIs "slice" $v }}[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "hookbridge.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" $v }}{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "hookbridge.toml.key" $k }} = {{ include "hookbridge.toml.value" (get $v $k) }}{{ end }} }
{{- else }}{{ fail (printf "config: cannot write a %s value to TOML" (kindOf $v)) }}
{{- end }}
{{- end }}

{{/*
A TOML table body: its plain keys, then its sub-tables as [a.b] sections.
Arguments: dict "prefix" "<dotted table name, empty for the root>" "map" <map>.
*/}}
{{- define "hookbridge.toml.table" -}}
{{- $prefix := .prefix }}
{{- $m := .map }}
{{- range $k := keys $m | sortAlpha }}
{{- $v := get $m $k }}
{{- if and (not (kindIs "map" $v)) (not (kindIs "invalid" $v)) }}
{{ include "hookbridge.toml.key" $k }} = {{ include "hookbridge.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k := keys $m | sortAlpha }}
{{- $v := get $m $k }}
{{- if kindIs "map" $v }}
{{- $name := include "hookbridge.toml.key" $k }}
{{- if $prefix }}{{ $name = printf "%s.%s" $prefix $name }}{{ end }}

[{{ $name }}]
{{- include "hookbridge.toml.table" (dict "prefix" $name "map" $v) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The rendered hookbridge.toml. */}}
{{- define "hookbridge.settingsToml" -}}
# hookbridge settings, rendered by the Helm chart from .Values.config and friends.
{{- include "hookbridge.toml.table" (dict "prefix" "" "map" (include "hookbridge.settings" . | fromJson)) }}
{{- end }}

{{/* Connector files, validated: non-empty, *.toml names a ConfigMap key can carry. */}}
{{- define "hookbridge.validateConnectors" -}}
{{- if not .Values.connectors }}
{{- fail "connectors: at least one connector file is required" }}
{{- end }}
{{- range $file, $text := .Values.connectors }}
{{- if not (regexMatch "^[A-Za-z0-9][-._A-Za-z0-9]*\\.toml$" $file) }}
{{- fail (printf "connectors.%s: a connector file name must end in .toml and use only letters, digits, '-', '_' and '.'" $file) }}
{{- end }}
{{- if eq $file "hookbridge.toml" }}
{{- fail "connectors: hookbridge.toml is the settings file's name; name the connector differently" }}
{{- end }}
{{- if not (kindIs "string" $text) }}
{{- fail (printf "connectors.%s must be TOML text (a string)" $file) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
kafka.brokers as hookbridge reads it: a string as written, a YAML list of host:port
strings joined with commas (Go would print a list as "[a b]"). An empty list, or one
holding anything but strings, fails the render rather than the pods.
*/}}
{{- define "hookbridge.brokers" -}}
{{- $brokers := required "kafka.brokers is required" .Values.kafka.brokers }}
{{- if kindIs "slice" $brokers }}
{{- if not $brokers }}{{ fail "kafka.brokers is an empty list" }}{{ end }}
{{- range $brokers }}
{{- if not (kindIs "string" .) }}{{ fail (printf "kafka.brokers: each entry is a host:port string, not %v" .) }}{{ end }}
{{- end }}
{{- join "," $brokers }}
{{- else }}
{{- $brokers | toString }}
{{- end }}
{{- end }}
