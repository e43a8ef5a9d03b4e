{{/*
Names and labels. The RayService name becomes the RayCluster name prefix, so KubeRay limits
it to 47 characters and requires a DNS-1035 label (it must start with a letter).
*/}}
{{- define "theo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 47 | trimSuffix "-" -}}
{{- end -}}

{{- define "theo.fullname" -}}
{{- $name := "" -}}
{{- if .Values.fullnameOverride -}}
{{- $name = .Values.fullnameOverride -}}
{{- else -}}
{{- $base := default .Chart.Name .Values.nameOverride -}}
{{- $name = ternary .Release.Name (printf "%s-%s" .Release.Name $base) (contains $base .Release.Name) -}}
{{- end -}}
{{- $name = $name | trunc 47 | trimSuffix "-" -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "resource name %q must be a DNS-1035 label starting with a letter (KubeRay's RayService rule); set fullnameOverride" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "theo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that never change between chart versions: safe in Ray pod templates and selectors. */}}
{{- define "theo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "theo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "theo.labels" -}}
{{ include "theo.selectorLabels" . }}
app.kubernetes.io/part-of: theo
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "theo.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Pod labels for one Ray group ("head", "gateway", or an engine key such as "whisper"). No chart or app version
here: changing a pod template makes KubeRay build a whole new RayCluster.
*/}}
{{- define "theo.podLabels" -}}
{{ include "theo.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "theo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "theo.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "theo.serveServiceName" -}}
{{- printf "%s-serve" (include "theo.fullname" .) -}}
{{- end -}}

{{- define "theo.manifestsConfigMap" -}}
{{- printf "%s-manifests" (include "theo.fullname" .) -}}
{{- end -}}

{{- define "theo.modelsClaim" -}}
{{- if .Values.modelStorage.existingClaim -}}
{{- .Values.modelStorage.existingClaim -}}
{{- else -}}
{{- printf "%s-models" (include "theo.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* image reference: {repository, tag, digest} with the chart's appVersion as default tag */}}
{{- define "theo.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A recursive map merge: maps merge key by key, any other value from .over replaces. */}}
{{- define "theo.deepMerge" -}}
{{- $out := dict -}}
{{- range $key, $value := .base -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- range $key, $value := .over -}}
{{- $current := get $out $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $out $key (include "theo.deepMerge" (dict "base" $current "over" $value) | fromJson) -}}
{{- else -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Label selector of this release's Ray pods (head and worker groups), not its Job or test pod. */}}
{{- define "theo.rayPodSelector" -}}
{{- $components := list "head" "gateway" -}}
{{- /* every registered engine, enabled or not: the pods of a group being removed keep
talking to their own head until their old cluster is deleted */ -}}
{{- range $name, $engine := (include "theo.builder" . | fromJson).engines -}}
{{- $components = append $components $engine.key -}}
{{- end -}}
matchLabels:
  {{- include "theo.selectorLabels" . | nindent 2 }}
matchExpressions:
  - {key: app.kubernetes.io/component, operator: In, values: {{ toJson $components }}}
{{- end -}}
