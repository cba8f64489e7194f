{{/* Herald chart helpers. */}}

{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's name for its objects: the release name when it already says herald. */}}
{{- define "herald.fullname" -}}
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

{{- define "herald.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: herald
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where ChannelBindings and their Secrets live: the release namespace unless set. */}}
{{- define "herald.controlNamespace" -}}
{{- default .Release.Namespace .Values.config.controlNamespace }}
{{- end }}

{{- define "herald.leaseName" -}}
{{- default (include "herald.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "herald.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator configuration file, in the format of config/herald.yaml. */}}
{{- define "herald.config" -}}
controlNamespace: {{ include "herald.controlNamespace" . }}
senders:
{{ toYaml .Values.config.senders | indent 2 }}
regions:
{{ toYaml .Values.config.regions | indent 2 }}
retention:
{{ toYaml .Values.config.retention | indent 2 }}
{{- with .Values.config.dataPlane }}
dataPlane:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.config.providers }}
providers:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.config.health }}
health:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.config.erasure }}
erasure:
{{ toYaml . | indent 2 }}
{{- end }}
{{- with .Values.config.breachNotices }}
breachNotices:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end }}

{{/* A Prometheus-style duration (30s, 15m, 1h, 2d) in seconds. */}}
{{- define "herald.seconds" -}}
{{- $d := toString . }}
{{- $n := int (regexReplaceAll "[smhd]$" $d "") }}
{{- if hasSuffix "d" $d }}{{ mul $n 86400 }}
{{- else if hasSuffix "h" $d }}{{ mul $n 3600 }}
{{- else if hasSuffix "m" $d }}{{ mul $n 60 }}
{{- else }}{{ $n }}
{{- end }}
{{- end }}
