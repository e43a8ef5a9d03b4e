{{/*
Render-time checks of values the schema cannot express: each `fail` names the values to change.
Included once, from rayservice.yaml.
*/}}

{{/* The most replicas a deployment's settings allow: autoscaling max_replicas, else num_replicas. */}}
{{- define "theo.maxReplicas" -}}
{{- if kindIs "map" .autoscaling -}}{{ .autoscaling.max_replicas }}{{- else -}}{{ .num_replicas }}{{- end -}}
{{- end -}}

{{- define "theo.validate" -}}
{{- $s := include "theo.settings" . | fromJson -}}
{{- $g := .Values.gateway -}}
{{- $rs := .Values.rayService -}}
{{- $drain := .Values.drain -}}
{{- $engines := (include "theo.enabledEngines" . | fromJson).items -}}
{{- $models := (include "theo.models" . | fromJson).items -}}
{{- $b := include "theo.builder" . | fromJson -}}
{{- if or (gt (int $g.minReplicas) (int $g.maxReplicas)) (gt (int $g.replicas) (int $g.maxReplicas)) (lt (int $g.replicas) (int $g.minReplicas)) -}}
{{- fail "gateway: need minReplicas <= replicas <= maxReplicas" -}}
{{- end -}}
{{- if not $engines -}}
{{- fail "engines: enable at least one engine group" -}}
{{- end -}}

{{- /* Capacity: the most replicas the settings allow must fit the most pods the groups have. */ -}}
{{- $gatewayMax := int (include "theo.maxReplicas" $s.gateway) -}}
{{- $gatewayCpus := mulf $gatewayMax $s.gateway.num_cpus -}}
{{- $gatewayHas := mul (int $g.maxReplicas) (int $g.rayCpus) -}}
{{- if gt $gatewayCpus (addf (float64 $gatewayHas) 0.000001) -}}
{{- fail (printf "capacity: %d gateway replicas x settings.gateway.num_cpus %v need %v CPUs, but the gateway group offers at most %d (gateway.maxReplicas %d x rayCpus %d)" $gatewayMax $s.gateway.num_cpus $gatewayCpus $gatewayHas (int $g.maxReplicas) (int $g.rayCpus)) -}}
{{- end -}}
{{- with $s.gateway.max_replicas_per_node -}}
{{- if gt $gatewayMax (mul (int $g.maxReplicas) (int .)) -}}
{{- fail (printf "capacity: %d gateway replicas at most %d per node need more than gateway.maxReplicas %d pods" $gatewayMax (int .) (int $g.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- range $engine := $engines -}}
{{- $key := $engine.key -}}
{{- $e := $engine.values -}}
{{- $spec := get $s $key -}}
{{- $perModel := int (include "theo.maxReplicas" $spec) -}}
{{- $names := list -}}
{{- range $m := $models -}}
{{- if eq (get $b.engines $m.engine).key $key -}}
{{- $names = append $names $m.name -}}
{{- end -}}
{{- end -}}
{{- $need := mul $perModel (len $names) -}}
{{- $slots := mul (int $e.maxReplicas) (int $e.replicasPerPod) -}}
{{- if gt $need $slots -}}
{{- fail (printf "capacity: engines.%s holds at most %d replicas (maxReplicas %d x replicasPerPod %d), but its %d model(s) (%s) may run %d each (settings.%s max_replicas): %d. Lower the replicas or raise maxReplicas (and the GPU node pool)" $key $slots (int $e.maxReplicas) (int $e.replicasPerPod) (len $names) (join ", " $names) $perModel $key $need) -}}
{{- end -}}
{{- with $spec.max_replicas_per_node -}}
{{- if gt $perModel (mul (int $e.maxReplicas) (int .)) -}}
{{- fail (printf "capacity: settings.%s: %d replicas at most %d per node need more than engines.%s.maxReplicas %d pods" $key $perModel (int .) $key (int $e.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* Drain: terminationGracePeriodSeconds >= drain deadline + margin, deadline >= graceful shutdown. */ -}}
{{- if $drain.enabled -}}
{{- $groups := list (dict "name" "gateway" "grace" $g.terminationGracePeriodSeconds "graceful" $s.gateway.graceful_shutdown_timeout_s "setting" "settings.gateway") -}}
{{- range $engine := $engines -}}
{{- $groups = append $groups (dict "name" (printf "engines.%s" $engine.key) "grace" $engine.values.terminationGracePeriodSeconds "graceful" (get $s $engine.key).graceful_shutdown_timeout_s "setting" (printf "settings.%s" $engine.key)) -}}
{{- end -}}
{{- range $group := $groups -}}
{{- $deadline := sub (int $group.grace) (int $drain.stopMarginSeconds) -}}
{{- if or (le $deadline 0) (lt (float64 $deadline) (float64 $group.graceful)) -}}
{{- fail (printf "drain: %s.terminationGracePeriodSeconds (%v) - drain.stopMarginSeconds (%v) = %d s of drain, less than %s.graceful_shutdown_timeout_s (%v): raise the grace period" $group.name $group.grace $drain.stopMarginSeconds $deadline $group.setting $group.graceful) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* Upgrades: the old cluster must outlive the streams the Ingress lets run. */ -}}
{{- $delay := float64 $rs.rayClusterDeletionDelaySeconds -}}
{{- if lt $delay (float64 $s.gateway.graceful_shutdown_timeout_s) -}}
{{- fail (printf "rayService.rayClusterDeletionDelaySeconds (%v) is shorter than settings.gateway.graceful_shutdown_timeout_s (%v)" $rs.rayClusterDeletionDelaySeconds $s.gateway.graceful_shutdown_timeout_s) -}}
{{- end -}}
{{- if .Values.ingress.enabled -}}
{{- range $name := list "nginx.ingress.kubernetes.io/proxy-read-timeout" "nginx.ingress.kubernetes.io/proxy-send-timeout" -}}
{{- $timeout := get ($.Values.ingress.annotations | default dict) $name -}}
{{- if and $timeout (regexMatch "^[0-9]+$" (toString $timeout)) (lt $delay (float64 $timeout)) -}}
{{- fail (printf "rayService.rayClusterDeletionDelaySeconds (%v) is shorter than the Ingress's %s (%v s): an upgrade would cut streams the Ingress allows; raise the delay or lower the timeout" $rs.rayClusterDeletionDelaySeconds $name $timeout) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq $rs.upgradeStrategy "NewClusterWithIncrementalUpgrade" -}}
{{- $o := $rs.clusterUpgradeOptions -}}
{{- if not .Values.autoscaler.enabled -}}
{{- fail "rayService.upgradeStrategy NewClusterWithIncrementalUpgrade needs the Ray autoscaler (autoscaler.enabled)" -}}
{{- end -}}
{{- if not $o.gatewayClassName -}}
{{- fail "rayService.upgradeStrategy NewClusterWithIncrementalUpgrade needs rayService.clusterUpgradeOptions.gatewayClassName (a Gateway API implementation's GatewayClass)" -}}
{{- end -}}
{{- if gt (int $o.stepSizePercent) (int $o.maxSurgePercent) -}}
{{- fail "rayService.clusterUpgradeOptions: stepSizePercent must not exceed maxSurgePercent" -}}
{{- end -}}
{{- if .Values.ingress.enabled -}}
{{- fail (printf "ingress.enabled with NewClusterWithIncrementalUpgrade: clients must enter through the Gateway KubeRay creates (%s-gateway), which shifts traffic between the clusters; an Ingress to the serve Service would bypass it" (include "theo.fullname" .)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.gcsFaultTolerance.enabled (not .Values.gcsFaultTolerance.redisAddress) -}}
{{- fail "gcsFaultTolerance.enabled needs gcsFaultTolerance.redisAddress" -}}
{{- end -}}
{{- end -}}
