{{/*
Ray pod templates. KubeRay adds the `ray start` command, the probes (bash, wget, grep in the
image) and its own labels; the Ray container must be the first container.
*/}}

{{/* An engine group's derived numbers, checked against the engine's settings. JSON. */}}
{{- define "theo.engineGroup" -}}
{{- $root := .root -}}
{{- $resource := .resource -}}
{{- $s := include "theo.settings" $root | fromJson -}}
{{- $spec := get $s $resource -}}
{{- $g := include "theo.engineValues" (dict "root" $root "key" $resource) | fromJson -}}
{{- $units := mulf $g.replicasPerPod $spec.custom_resource -}}
{{- if ne $units (floor $units) -}}
{{- fail (printf "engines.%s: replicasPerPod (%v) x settings.%s.custom_resource (%v) must be a whole number: Ray custom resources of a worker group are integers" $resource $g.replicasPerPod $resource $spec.custom_resource) -}}
{{- end -}}
{{- $gpuNeed := mulf $g.replicasPerPod $spec.num_gpus -}}
{{- if gt $gpuNeed (addf (float64 $g.gpus) 0.000001) -}}
{{- fail (printf "engines.%s: %v replicas per pod x settings.%s.num_gpus %v need %v GPUs but the pod has gpus: %v" $resource $g.replicasPerPod $resource $spec.num_gpus $gpuNeed $g.gpus) -}}
{{- end -}}
{{- if or (gt (int $g.minReplicas) (int $g.maxReplicas)) (gt (int $g.replicas) (int $g.maxReplicas)) (lt (int $g.replicas) (int $g.minReplicas)) -}}
{{- fail (printf "engines.%s: need minReplicas <= replicas <= maxReplicas" $resource) -}}
{{- end -}}
{{- $params := dict "num-cpus" (toString (int (ceil (mulf $g.replicasPerPod $spec.num_cpus)))) "num-gpus" (toString (int $g.gpus)) "resources" (printf "\"{\\\"%s\\\": %d}\"" $resource (int $units)) -}}
{{- toJson (dict "rayStartParams" (merge $params ($g.rayStartParams | default dict))) -}}
{{- end -}}

{{- define "theo.rayEnv" -}}
{{- $root := .root -}}
{{- $s := include "theo.settings" $root | fromJson -}}
- name: THEO_MODELS_DIR
  value: {{ $s.models_dir | toString | quote }}
{{- /* Serve's proxy runs on every node and bounds request bodies where it buffers them. */}}
- name: RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH
  value: "serve.proxy:middlewares"
- name: THEO_MAX_UPLOAD_MB
  value: {{ $s.max_upload_mb | toString | quote }}
{{- with $root.Values.apiKeys.existingSecret }}
- name: THEO_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $root.Values.apiKeys.key }}
{{- end }}
{{- if .engine }}
{{- include "theo.hfTokenEnv" $root }}
{{- end }}
{{- with .env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* HF_TOKEN from `modelPull.hfTokenSecret`, for whatever pulls models (init container, Job,
engine replicas pulling a model added later). */}}
{{- define "theo.hfTokenEnv" -}}
{{- with .Values.modelPull.hfTokenSecret.name }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.modelPull.hfTokenSecret.key }}
{{- end }}
{{- end -}}

{{- define "theo.modelVolumes" -}}
- name: models
{{- if or .Values.modelStorage.existingClaim .Values.modelStorage.create }}
  persistentVolumeClaim:
    claimName: {{ include "theo.modelsClaim" . }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.modelStorage.emptyDirSizeLimit }}
{{- end }}
- name: manifests
  configMap:
    name: {{ include "theo.manifestsConfigMap" . }}
{{- end -}}

{{/*
Shell function `pull NAME SOURCE`: if NAME is not on the volume yet, `theo pull SOURCE` it (under
a file lock, so pods sharing the volume pull once); fail when it is still missing; write the
chart's manifest when the directory has none.
*/}}
{{- define "theo.pullFunction" -}}
set -euo pipefail
pull() {
  local name="$1" source="${2:-}" revision="${3:-}" dir="${THEO_MODELS_DIR}/$1"
  if [ ! -e "${dir}/theo.yaml" ] && [ -n "${source}" ]; then
    echo "pulling ${name} from ${source}${revision:+ at ${revision}}"
    flock "${THEO_MODELS_DIR}/.theo-pull.lock" \
      bash -c '[ -e "$1/theo.yaml" ] || theo pull "$2" --name "$3" --models-dir "$4" ${5:+--revision "$5"}' \
      _ "${dir}" "${source}" "${name}" "${THEO_MODELS_DIR}" "${revision}"
  fi
  if [ ! -d "${dir}" ]; then
    echo "model ${name}: ${dir} is missing; provision it on the volume or set its source" >&2
    exit 1
  fi
  if [ ! -e "${dir}/theo.yaml" ] && [ -e "/etc/theo/manifests/${name}.yaml" ]; then
    cp "/etc/theo/manifests/${name}.yaml" "${dir}/theo.yaml"
  fi
}
{{- end -}}

{{/*
Init container of an engine pod. The list of models comes from the manifests ConfigMap
(`pull-<group>.txt`), not from the pod template: adding a model then changes only the ConfigMap
and serveConfigV2 (applied in place), never the RayCluster spec (which would start a new cluster).
*/}}
{{- define "theo.pullContainer" -}}
{{- $root := .root -}}
{{- $s := include "theo.settings" $root | fromJson -}}
- name: pull-models
  image: {{ include "theo.image" (dict "root" $root "image" .image) }}
  imagePullPolicy: {{ .image.pullPolicy }}
  command: ["/bin/bash", "-c"]
  args:
    - |
      {{- include "theo.pullFunction" $root | nindent 6 }}
      while read -r name source revision; do
        if [ -n "${name}" ]; then pull "${name}" "${source}" "${revision}"; fi
      done < "/etc/theo/manifests/pull-${THEO_ENGINE_GROUP}.txt"
  env:
    - name: THEO_MODELS_DIR
      value: {{ $s.models_dir | toString | quote }}
    - name: THEO_ENGINE_GROUP
      value: {{ .group }}
    {{- include "theo.hfTokenEnv" $root | trim | nindent 4 }}
  resources:
    {{- toYaml $root.Values.modelPull.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "theo.scratchMounts" $root | nindent 4 }}
    - name: models
      mountPath: {{ $s.models_dir | toString | quote }}
    - name: manifests
      mountPath: /etc/theo/manifests
      readOnly: true
{{- end -}}

{{/*
A Ray pod template. Arguments: root, component, image, resources, env, head (bool), engine
(bool), grace, drain (the preStop drain deadline in seconds, 0 for none), placement (the
group's values: nodeSelector, tolerations, affinity, priorityClassName, runtimeClassName,
topologySpreadConstraints, extraVolumes, extraVolumeMounts).

Ports: only head and gateway pods name the Serve port `serve`, the Service's target port, so
client connections end on gateway pods only; engine pods call theirs `proxy`.
*/}}
{{- define "theo.podTemplate" -}}
{{- $root := .root -}}
{{- $s := include "theo.settings" $root | fromJson -}}
{{- $engine := .engine -}}
{{- $p := .placement -}}
{{- $labels := include "theo.podLabels" (dict "root" $root "component" .component) | fromYaml -}}
metadata:
  labels:
    {{- toYaml $labels | nindent 4 }}
  {{- with $root.Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "theo.serviceAccountName" $root }}
  automountServiceAccountToken: {{ .head }}
  {{- with .grace }}
  terminationGracePeriodSeconds: {{ . }}
  {{- end }}
  {{- with $p.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $p.runtimeClassName }}
  runtimeClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $p.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    {{- $c := deepCopy . }}
    {{- if not (hasKey $c "labelSelector") }}
    {{- $_ := set $c "labelSelector" (dict "matchLabels" (include "theo.podLabels" (dict "root" $root "component" $.component) | fromYaml)) }}
    {{- end }}
    - {{- toYaml $c | nindent 6 }}
    {{- end }}
  {{- end }}
  {{- if and $engine $root.Values.modelPull.enabled }}
  initContainers:
    {{- include "theo.pullContainer" (dict "root" $root "image" .image "group" .component) | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ ternary "ray-head" "ray-worker" .head }}
      image: {{ include "theo.image" (dict "root" $root "image" .image) }}
      imagePullPolicy: {{ .image.pullPolicy }}
      ports:
        {{- if .head }}
        - {name: gcs, containerPort: 6379}
        - {name: dashboard, containerPort: 8265}
        - {name: client, containerPort: 10001}
        {{- end }}
        - {name: {{ ternary "proxy" "serve" $engine }}, containerPort: {{ $s.port }}}
        - {name: metrics, containerPort: 8080}
      env:
        {{- include "theo.rayEnv" (dict "root" $root "env" .env "engine" $engine) | nindent 8 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      {{- if $engine }}
      {{- /* KubeRay's probe for serving workers, on this chart's Serve port (KubeRay looks for a
      port named `serve`, which engine pods do not have). */}}
      {{- $agent := get (.rayStartParams | default dict) "dashboard-agent-listen-port" | default "52365" }}
      readinessProbe:
        exec:
          command:
            - bash
            - -c
            - >-
              wget --tries 1 -T 2 -q -O- http://localhost:{{ $agent }}/api/local_raylet_healthz | grep success
              && wget --tries 1 -T 2 -q -O- http://localhost:{{ $s.port }}/-/healthz | grep success
        initialDelaySeconds: 10
        timeoutSeconds: 2
        periodSeconds: 5
        successThreshold: 1
        failureThreshold: 1
      {{- end }}
      {{- if .drain }}
      lifecycle:
        preStop:
          exec:
            command: ["python", "-m", "serve.drain", "--deadline-s", {{ .drain | quote }}]
      {{- end }}
      volumeMounts:
        {{- include "theo.scratchMounts" $root | nindent 8 }}
        {{- if $root.Values.sharedMemory.enabled }}
        - name: shm
          mountPath: /dev/shm
        {{- end }}
        {{- if $engine }}
        - name: models
          mountPath: {{ $s.models_dir | toString | quote }}
        - name: manifests
          mountPath: /etc/theo/manifests
          readOnly: true
        {{- end }}
        {{- with $p.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "theo.scratchVolumes" $root | nindent 4 }}
    {{- if $root.Values.sharedMemory.enabled }}
    - name: shm
      emptyDir:
        medium: Memory
        {{- with $root.Values.sharedMemory.sizeLimit }}
        sizeLimit: {{ . }}
        {{- end }}
    {{- end }}
    {{- if $engine }}
    {{- include "theo.modelVolumes" $root | nindent 4 }}
    {{- end }}
    {{- with $p.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The writable emptyDirs of every container (the root filesystem is read-only). */}}
{{- define "theo.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: home
  emptyDir:
    sizeLimit: {{ .Values.scratch.homeSizeLimit }}
{{- end -}}

{{- define "theo.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: {{ .Values.scratch.homePath }}
{{- end -}}

{{/* Container resources plus the group's GPUs. */}}
{{- define "theo.gpuResources" -}}
{{- $res := deepCopy (.resources | default dict) -}}
{{- if gt (int .gpus) 0 -}}
{{- $limits := deepCopy ($res.limits | default dict) -}}
{{- $_ := set $limits "nvidia.com/gpu" (toString (int .gpus)) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{- toJson $res -}}
{{- end -}}
