{{/*
serveConfigV2, built from `settings` + `models` exactly as serve/builder.py's `serve_config`
builds it for `theo serve`. Defaults, names and engine resources come from
files/builder-defaults.json, generated from the builder and the registered engines
(engines/spec.py) by `python -m serve.deploy.chart`;
tests/test_chart.py renders this and requires equality with the builder's output.
*/}}

{{- define "theo.builder" -}}
{{- .Files.Get "files/builder-defaults.json" -}}
{{- end -}}

{{/* TheoSettings as the builder dumps it: defaults, then values; secrets left out. JSON. */}}
{{- define "theo.settings" -}}
{{- $b := include "theo.builder" . | fromJson -}}
{{- $s := include "theo.deepMerge" (dict "base" $b.settings "over" (.Values.settings | default dict)) | fromJson -}}
{{- range $nullable := $b.nullableModels -}}
{{- $parent := get $s (index $nullable.path 0) -}}
{{- $value := get $parent (index $nullable.path 1) -}}
{{- if kindIs "map" $value -}}
{{- $_ := set $parent (index $nullable.path 1) (include "theo.deepMerge" (dict "base" $nullable.defaults "over" $value) | fromJson) -}}
{{- end -}}
{{- end -}}
{{- range $secret := $b.secretSettings -}}
{{- $_ := unset $s $secret -}}
{{- end -}}
{{- toJson $s -}}
{{- end -}}

{{/*
An engine's worker group values, `dict "root" $ "key" KEY`: the registered engine's generated
defaults (files/builder-defaults.json), then `engines.<key>`; the gateway image when neither
names an image (an engine without libraries of its own). JSON.
*/}}
{{- define "theo.engineValues" -}}
{{- $b := include "theo.builder" .root | fromJson -}}
{{- $key := .key -}}
{{- $defaults := dict -}}
{{- range $name, $engine := $b.engines -}}
{{- if eq $engine.key $key }}{{ $defaults = $engine.group }}{{ end -}}
{{- end -}}
{{- $group := include "theo.deepMerge" (dict "base" $defaults "over" (get .root.Values.engines $key | default dict)) | fromJson -}}
{{- if not $group.image -}}
{{- $_ := set $group "image" .root.Values.gatewayImage -}}
{{- end -}}
{{- toJson $group -}}
{{- end -}}

{{/* The registered engines whose worker group is enabled, in engine name order:
{"items": [{"name", "key", "userConfigKeys", "nativeStreaming", "values": <group values>}]}. */}}
{{- define "theo.enabledEngines" -}}
{{- $root := . -}}
{{- $b := include "theo.builder" . | fromJson -}}
{{- $items := list -}}
{{- range $name, $engine := $b.engines -}}
{{- $values := include "theo.engineValues" (dict "root" $root "key" $engine.key) | fromJson -}}
{{- if $values.enabled -}}
{{- $items = append $items (dict "name" $name "key" $engine.key "userConfigKeys" $engine.userConfigKeys "nativeStreaming" $engine.nativeStreaming "values" $values) -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "items" $items) -}}
{{- end -}}

{{/* The served models' manifests (defaults filled, `directory` set), as {"items": [...]}. */}}
{{- define "theo.models" -}}
{{- $b := include "theo.builder" . | fromJson -}}
{{- $s := include "theo.settings" . | fromJson -}}
{{- $items := list -}}
{{- $names := dict -}}
{{- range $entry := .Values.models -}}
{{- $manifest := include "theo.deepMerge" (dict "base" $b.manifest "over" $entry.manifest) | fromJson -}}
{{- $engine := get $b.engines (toString $manifest.engine) -}}
{{- if not $engine -}}
{{- fail (printf "models: %q has engine %q; registered engines: %s" $manifest.name $manifest.engine (keys $b.engines | sortAlpha | join ", ")) -}}
{{- end -}}
{{- $group := include "theo.engineValues" (dict "root" $ "key" $engine.key) | fromJson -}}
{{- if and (dig "enabled" true $entry) $group.enabled -}}
{{- if hasKey $names $manifest.name -}}
{{- fail (printf "models: %q is listed twice" $manifest.name) -}}
{{- end -}}
{{- $_ := set $names $manifest.name true -}}
{{- $_ := set $manifest "directory" (printf "%s/%s" (trimSuffix "/" (toString $s.models_dir)) $manifest.name) -}}
{{- /* the pinned source, as engines.manifest.ModelSource (what serve.deploy.chart sets) */}}
{{- if $entry.source -}}
{{- $source := deepCopy $b.manifestSource -}}
{{- $_ := set $source "uri" $entry.source -}}
{{- with $entry.revision }}{{ $_ := set $source "revision" . }}{{ end -}}
{{- $_ := set $manifest "source" $source -}}
{{- end -}}
{{- $items = append $items $manifest -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "items" $items) -}}
{{- end -}}

{{/* Replica count or autoscaling, concurrency and shutdown of one deployment. JSON. */}}
{{- define "theo.replicaOptions" -}}
{{- $o := dict "max_ongoing_requests" .max_ongoing_requests "max_queued_requests" .max_queued_requests "graceful_shutdown_timeout_s" .graceful_shutdown_timeout_s -}}
{{- if .max_replicas_per_node -}}
{{- $_ := set $o "max_replicas_per_node" .max_replicas_per_node -}}
{{- end -}}
{{- if kindIs "map" .autoscaling -}}
{{- $auto := deepCopy .autoscaling -}}
{{- $_ := set $auto "initial_replicas" (max (int .autoscaling.min_replicas) 1) -}}
{{- $_ := set $o "autoscaling_config" $auto -}}
{{- else -}}
{{- $_ := set $o "num_replicas" .num_replicas -}}
{{- end -}}
{{- toJson $o -}}
{{- end -}}

{{- define "theo.deployments" -}}
{{- $b := include "theo.builder" . | fromJson -}}
{{- $s := include "theo.settings" . | fromJson -}}
{{- $gateway := include "theo.replicaOptions" $s.gateway | fromJson -}}
{{- $_ := set $gateway "name" $b.gatewayDeployment -}}
{{- $_ := set $gateway "ray_actor_options" (dict "num_cpus" $s.gateway.num_cpus "resources" (dict $b.gatewayResource 1)) -}}
{{- $deployments := list $gateway -}}
{{- range $m := (include "theo.models" . | fromJson).items -}}
{{- $engine := get $b.engines $m.engine -}}
{{- $resource := $engine.key -}}
{{- $spec := get $s $resource -}}
{{- $d := include "theo.replicaOptions" $spec | fromJson -}}
{{- $_ := set $d "name" (printf "%s-%s" $resource (regexReplaceAll "[^A-Za-z0-9_-]" $m.name "_")) -}}
{{- $_ := set $d "ray_actor_options" (dict "num_cpus" $spec.num_cpus "num_gpus" $spec.num_gpus "resources" (dict $resource $spec.custom_resource)) -}}
{{- $userConfig := dict -}}
{{- range $key := $engine.userConfigKeys -}}
{{- $_ := set $userConfig $key (get $spec $key) -}}
{{- end -}}
{{- if $userConfig -}}
{{- $_ := set $d "user_config" $userConfig -}}
{{- end -}}
{{- /* mirrors engines.spec.streams_natively: the engine streams and the model declares it */}}
{{- if and $engine.nativeStreaming $m.capabilities.streaming -}}
{{- $_ := set $d "request_router_config" (dict "request_router_class" $b.stickyRouterClass) -}}
{{- end -}}
{{- $deployments = append $deployments $d -}}
{{- end -}}
{{- toJson (dict "items" $deployments) -}}
{{- end -}}

{{/* The whole Serve config document, as a dict. */}}
{{- define "theo.serveConfig" -}}
{{- $b := include "theo.builder" . | fromJson -}}
{{- $s := include "theo.settings" . | fromJson -}}
{{- $config := deepCopy $b.skeleton -}}
{{- $_ := set $config.http_options "port" $s.port -}}
{{- $app := index $config.applications 0 -}}
{{- $_ := set $app "name" $s.app_name -}}
{{- /* args without what the deployments entries carry (serve.builder.cluster_args) */ -}}
{{- $args := deepCopy $s -}}
{{- range $section, $fields := $b.settingsAppliedInPlace -}}
{{- $part := get $args $section -}}
{{- range $field := $fields }}{{ $_ := unset $part $field }}{{ end -}}
{{- end -}}
{{- $_ := set $app "args" (dict "settings" $args "manifests" (include "theo.models" . | fromJson).items) -}}
{{- $_ := set $app "deployments" (include "theo.deployments" . | fromJson).items -}}
{{- toJson $config -}}
{{- end -}}
