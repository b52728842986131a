{{/* vim: set filetype=mustache: */}}

{{- define "ml-worker.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name; truncated to 63 chars (DNS label). */}}
{{- define "ml-worker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ml-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ml-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ml-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ml-worker.labels" -}}
helm.sh/chart: {{ include "ml-worker.chart" . }}
{{ include "ml-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: ml-worker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ml-worker.serviceAccountName" -}}
{{- if .Values.mlWorker.serviceAccount.create -}}
{{- default (include "ml-worker.fullname" .) .Values.mlWorker.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.mlWorker.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret the chart creates for values given inline (apiKey.value, database.url, ...). */}}
{{- define "ml-worker.secretName" -}}
{{- include "ml-worker.fullname" . -}}
{{- end -}}

{{- define "ml-worker.platformConfigMapName" -}}
{{- default (printf "%s-platform" (include "ml-worker.fullname" .)) .Values.mlWorker.platformConfigMap.name -}}
{{- end -}}

{{/* In-cluster URL of the Service, published to the platform as ML_WORKER_URL. */}}
{{- define "ml-worker.url" -}}
{{- printf "http://%s.%s.svc:%v" (include "ml-worker.fullname" .) .Release.Namespace .Values.mlWorker.service.port -}}
{{- end -}}

{{/* Inline secret values the chart stores in its own Secret, as a dict key -> value. */}}
{{- define "ml-worker.inlineSecretData" -}}
{{- $w := .Values.mlWorker -}}
{{- $d := dict -}}
{{- if and $w.apiKey.value (not $w.apiKey.existingSecret) -}}
{{- $_ := set $d "api-key" $w.apiKey.value -}}
{{- end -}}
{{- if and $w.database.url (not $w.database.existingSecret) -}}
{{- $_ := set $d "database-url" $w.database.url -}}
{{- end -}}
{{- if and (eq $w.jobStore.type "redis") $w.jobStore.redis.url (not $w.jobStore.redis.existingSecret) -}}
{{- $_ := set $d "redis-url" $w.jobStore.redis.url -}}
{{- end -}}
{{- if and (eq $w.jobStore.type "postgres") $w.jobStore.postgres.url (not $w.jobStore.postgres.existingSecret) -}}
{{- $_ := set $d "job-store-url" $w.jobStore.postgres.url -}}
{{- end -}}
{{- toYaml $d -}}
{{- end -}}

{{/*
The container's env list: fixed settings, secrets (the user's existing Secret or the chart's own),
the ML_WORKER_* tuning values that are not null, then mlWorker.extraEnv.
*/}}
{{- define "ml-worker.env" -}}
{{- $w := .Values.mlWorker -}}
{{- $inline := include "ml-worker.inlineSecretData" . | fromYaml -}}
{{- $own := include "ml-worker.secretName" . -}}
{{- $env := list
      (dict "name" "ML_WORKER_HOST" "value" "0.0.0.0")
      (dict "name" "ML_WORKER_PORT" "value" (toString $w.port))
      (dict "name" "TMPDIR" "value" "/tmp")
      (dict "name" "ML_WORKER_JOB_STORE" "value" $w.jobStore.type) -}}
{{- $secrets := list
      (dict "env" "ML_WORKER_API_KEY" "cfg" $w.apiKey "own" "api-key" "on" true)
      (dict "env" "DATABASE_URL" "cfg" $w.database "own" "database-url" "on" true)
      (dict "env" "REDIS_URL" "cfg" $w.jobStore.redis "own" "redis-url" "on" (eq $w.jobStore.type "redis"))
      (dict "env" "ML_WORKER_JOB_STORE_URL" "cfg" $w.jobStore.postgres "own" "job-store-url" "on" (eq $w.jobStore.type "postgres")) -}}
{{- range $secrets -}}
{{- if .on -}}
{{- if .cfg.existingSecret -}}
{{- $env = append $env (dict "name" .env "valueFrom" (dict "secretKeyRef" (dict "name" .cfg.existingSecret "key" .cfg.existingSecretKey))) -}}
{{- else if hasKey $inline .own -}}
{{- $env = append $env (dict "name" .env "valueFrom" (dict "secretKeyRef" (dict "name" $own "key" .own))) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $names := dict
      "logLevel" "ML_WORKER_LOG_LEVEL"
      "logFormat" "ML_WORKER_LOG_FORMAT"
      "cpuLimit" "ML_WORKER_CPU_LIMIT"
      "workers" "ML_WORKER_WORKERS"
      "queueLimit" "ML_WORKER_QUEUE_LIMIT"
      "maxRows" "ML_WORKER_MAX_ROWS"
      "maxBodyMb" "ML_WORKER_MAX_BODY_MB"
      "jobResultTtlSeconds" "ML_WORKER_JOB_RESULT_TTL_SECONDS"
      "jobFailureTtlSeconds" "ML_WORKER_JOB_FAILURE_TTL_SECONDS"
      "jobTimeoutSeconds" "ML_WORKER_JOB_TIMEOUT_SECONDS"
      "threadsPerTask" "ML_WORKER_THREADS_PER_TASK"
      "jobLeaseSeconds" "ML_WORKER_JOB_LEASE_SECONDS"
      "maxQueuedJobs" "ML_WORKER_MAX_QUEUED_JOBS"
      "maxQueuedMb" "ML_WORKER_MAX_QUEUED_MB"
      "jobPayloadInlineMb" "ML_WORKER_JOB_PAYLOAD_INLINE_MB"
      "jobMaxAttempts" "ML_WORKER_JOB_MAX_ATTEMPTS"
      "maxRunningPerTenant" "ML_WORKER_MAX_RUNNING_PER_TENANT"
      "trainQueueWaitSeconds" "ML_WORKER_TRAIN_QUEUE_WAIT_SECONDS"
      "trainTimeoutSeconds" "ML_WORKER_TRAIN_TIMEOUT_SECONDS"
      "statementTimeoutSeconds" "ML_WORKER_STATEMENT_TIMEOUT_SECONDS"
      "databaseSchemas" "ML_WORKER_DATABASE_SCHEMAS" -}}
{{- range $key := keys $names | sortAlpha -}}
{{- $v := index $w.config $key -}}
{{- if not (kindIs "invalid" $v) -}}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) -}}
{{- $v = int64 $v -}}
{{- end -}}
{{- $env = append $env (dict "name" (index $names $key) "value" (toString $v)) -}}
{{- end -}}
{{- end -}}
{{- $dask := $w.dask | default dict -}}
{{- range $key, $name := dict "schedulerAddress" "ML_WORKER_DASK_SCHEDULER" "minRows" "ML_WORKER_DASK_MIN_ROWS" "maxRows" "ML_WORKER_DASK_MAX_ROWS" -}}
{{- $v := index $dask $key -}}
{{- if not (kindIs "invalid" $v) -}}
{{- if and (kindIs "float64" $v) (eq $v (float64 (int64 $v))) -}}
{{- $v = int64 $v -}}
{{- end -}}
{{- $env = append $env (dict "name" $name "value" (toString $v)) -}}
{{- end -}}
{{- end -}}
{{- toYaml (concat $env $w.extraEnv) -}}
{{- end -}}

{{/*
Refuse configurations that cannot work. Called from every manifest so that `helm template`,
`helm install` and `helm upgrade` all stop with the message.
*/}}
{{- define "ml-worker.validate" -}}
{{- $w := .Values.mlWorker -}}
{{- $store := $w.jobStore.type -}}
{{- if eq $store "memory" -}}
{{- if gt (int $w.replicas) 1 -}}
{{- fail (printf "\n\nmlWorker.jobStore.type=memory with mlWorker.replicas=%d: each pod would keep its own jobs and GET /status/{jobId} would miss the jobs of the other pods. Set mlWorker.jobStore.type to redis or postgres, or mlWorker.replicas to 1." (int $w.replicas)) -}}
{{- end -}}
{{- if and $w.autoscaling.enabled (gt (int $w.autoscaling.maxReplicas) 1) -}}
{{- fail (printf "\n\nmlWorker.jobStore.type=memory with mlWorker.autoscaling.enabled and maxReplicas=%d: each pod would keep its own jobs and GET /status/{jobId} would miss the jobs of the other pods. Set mlWorker.jobStore.type to redis or postgres." (int $w.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $store "redis") (not $w.jobStore.redis.url) (not $w.jobStore.redis.existingSecret) -}}
{{- fail "\n\nmlWorker.jobStore.type=redis needs mlWorker.jobStore.redis.url or mlWorker.jobStore.redis.existingSecret (REDIS_URL)." -}}
{{- end -}}
{{- if and (eq $store "postgres") (not $w.jobStore.postgres.url) (not $w.jobStore.postgres.existingSecret) (not $w.database.url) (not $w.database.existingSecret) -}}
{{- fail "\n\nmlWorker.jobStore.type=postgres needs mlWorker.jobStore.postgres.url/existingSecret or mlWorker.database.url/existingSecret (ML_WORKER_JOB_STORE_URL defaults to DATABASE_URL)." -}}
{{- end -}}
{{- if and $w.podDisruptionBudget.enabled (not (kindIs "invalid" $w.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $w.podDisruptionBudget.maxUnavailable)) -}}
{{- fail "\n\nmlWorker.podDisruptionBudget: set only one of minAvailable and maxUnavailable (the other to null)." -}}
{{- end -}}
{{- if and $w.podDisruptionBudget.enabled (kindIs "invalid" $w.podDisruptionBudget.minAvailable) (kindIs "invalid" $w.podDisruptionBudget.maxUnavailable) -}}
{{- fail "\n\nmlWorker.podDisruptionBudget: set one of minAvailable and maxUnavailable." -}}
{{- end -}}
{{- if and $w.autoscaling.enabled (lt (int $w.autoscaling.maxReplicas) (int $w.autoscaling.minReplicas)) -}}
{{- fail "\n\nmlWorker.autoscaling.maxReplicas must be >= minReplicas." -}}
{{- end -}}
{{- end -}}
