{{/* The chart's name, and the release's full name: the prefix of every object's name. */}}
{{- define "asynctask-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "asynctask-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "asynctask-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "asynctask-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The pods' labels, as config/manager sets them, plus the release. */}}
{{- define "asynctask-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "asynctask-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/*
How the replicas share the work: "ring" or "leader". auto is the ring for more than one replica, so that a
single replica runs as before. The defaults here and below stand in for values a release made before they
existed lacks when it is upgraded with --reuse-values (which keeps the old chart's values.yaml).
*/}}
{{- define "asynctask-operator.sharding" -}}
{{- $sharding := .Values.sharding | default "auto" }}
{{- if ne $sharding "auto" }}
{{- $sharding }}
{{- else if gt (int .Values.replicaCount) 1 }}
{{- "ring" }}
{{- else }}
{{- "leader" }}
{{- end }}
{{- end }}

{{/* "true" when the manager holds Leases: each ring member its own, or the leader election's. */}}
{{- define "asynctask-operator.leases" -}}
{{- if or (eq (include "asynctask-operator.sharding" .) "ring") .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/*
The pods' topologySpreadConstraints, each with a labelSelector of the pods' own labels when it has none; by
default, with more than one replica, a soft spread over nodes. matchLabelKeys counts only the pods of the
same ReplicaSet, so that during a rolling update the old pods do not skew where the new ones go.
*/}}
{{- define "asynctask-operator.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "asynctask-operator.selectorLabels" . | fromYaml) }}
{{- $constraints := .Values.topologySpreadConstraints }}
{{- if and (not $constraints) (gt (int .Values.replicaCount) 1) }}
{{- $constraints = list (dict "maxSkew" 1 "topologyKey" "kubernetes.io/hostname" "whenUnsatisfiable" "ScheduleAnyway" "matchLabelKeys" (list "pod-template-hash")) }}
{{- end }}
{{- $withSelectors := list }}
{{- range $constraints }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" $selector }}
{{- end }}
{{- $withSelectors = append $withSelectors $constraint }}
{{- end }}
{{- with $withSelectors }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- define "asynctask-operator.labels" -}}
{{ include "asynctask-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "asynctask-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "asynctask-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "asynctask-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The manager's permissions, as config/rbac/role.yaml (generated from the reconcilers' markers) grants them;
test/deploy compares the two. Split by scope: with watchNamespaces the namespaced ones go into a Role per
watched namespace and only the cluster-scoped ones stay in the ClusterRole.
*/}}
{{- define "asynctask-operator.clusterScopedRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["tasks.asynctask.dev"]
  resources: ["clustertaskbackends"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["tasks.asynctask.dev"]
  resources: ["clustertaskbackends/status"]
  verbs: ["get", "patch", "update"]
{{- end }}

{{- define "asynctask-operator.namespacedRules" -}}
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "get", "update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["tasks.asynctask.dev"]
  resources: ["asynctasks"]
  verbs: ["delete", "get", "list", "patch", "update", "watch"]
- apiGroups: ["tasks.asynctask.dev"]
  resources: ["asynctasks/status", "taskbackends/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["tasks.asynctask.dev"]
  resources: ["taskbackends"]
  verbs: ["get", "list", "watch"]
{{- end }}
