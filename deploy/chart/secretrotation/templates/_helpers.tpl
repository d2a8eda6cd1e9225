{{/* The release's name for its objects: <release> if it holds the chart's name, else <release>-<chart>. */}}
{{- define "secretrotation.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "secretrotation.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "secretrotation.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secretrotation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "secretrotation.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "secretrotation.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's user name, as admission policies see its requests. */}}
{{- define "secretrotation.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "secretrotation.fullname" . }}
{{- end -}}

{{- define "secretrotation.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The namespaces a namespaced install acts in: the release namespace unless listed. */}}
{{- define "secretrotation.namespaces" -}}
{{- if .Values.namespaces -}}
{{- toJson (uniq .Values.namespaces) -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces a cluster-wide install never acts in, as the operator computes them. */}}
{{- define "secretrotation.excludedNamespaces" -}}
{{- toJson (concat (list "kube-system" .Release.Namespace) .Values.excludeNamespaces | uniq) -}}
{{- end -}}

{{/*
The documents of a manifest file shipped under files/ (a copy of one in deploy/), parsed.
Usage: include "secretrotation.documents" (list . "files/policy-operator.yaml") | fromJson
*/}}
{{- define "secretrotation.documents" -}}
{{- $root := index . 0 -}}
{{- $docs := list -}}
{{- range $text := regexSplit "(?m)^---\\s*$" ($root.Files.Get (index . 1)) -1 -}}
{{- $doc := fromYaml $text -}}
{{- if $doc -}}
{{- $docs = append $docs $doc -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "documents" $docs) -}}
{{- end -}}
