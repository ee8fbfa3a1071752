{{/* Names and labels shared by every template. */}}
{{- define "zorgnet-hub.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "zorgnet-hub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "zorgnet-hub.labels" -}}
app.kubernetes.io/name: {{ include "zorgnet-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "zorgnet-hub.selector" -}}
app.kubernetes.io/name: {{ include "zorgnet-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "zorgnet-hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "zorgnet-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "zorgnet-hub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "zorgnet-hub.databaseSecret" -}}
{{- default (printf "%s-database" (include "zorgnet-hub.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "zorgnet-hub.keysSecret" -}}
{{- default (printf "%s-keys" (include "zorgnet-hub.fullname" .)) .Values.keys.existingSecret -}}
{{- end -}}

{{/* The environment of every hub process: settings, and the database URL read from a mounted Secret. */}}
{{- define "zorgnet-hub.env" -}}
- name: HUB_ENVIRONMENT
  value: production
- name: HUB_BASE_URL
  value: {{ required "config.baseUrl is required" .Values.config.baseUrl | quote }}
- name: HUB_FORWARDED_ALLOW_IPS
  value: {{ required "config.forwardedAllowIps is required" .Values.config.forwardedAllowIps | quote }}
- name: HUB_DEV_LOGIN
  value: "false"
- name: HUB_LOG_FORMAT
  value: json
- name: HUB_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: HUB_DB_POOL_SIZE
  value: {{ .Values.config.dbPoolSize | quote }}
- name: HUB_GRACEFUL_TIMEOUT
  value: {{ .Values.config.gracefulTimeout | quote }}
- name: HUB_DATABASE_URL_FILE
  value: /run/secrets/hub/database-url
- name: HUB_VAR_DIR
  value: /var/lib/hub
- name: PROMETHEUS_MULTIPROC_DIR
  value: /tmp/hub-metrics
{{- range $name, $value := .Values.config.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* Volumes: the database URL and the keys from Secrets (read-only), scratch space for var and /tmp. */}}
{{- define "zorgnet-hub.volumes" -}}
- name: database
  secret:
    secretName: {{ include "zorgnet-hub.databaseSecret" . }}
    defaultMode: 0400
- name: keys
  secret:
    secretName: {{ include "zorgnet-hub.keysSecret" . }}
    defaultMode: 0400
    items:
      - key: jwks.json
        path: jwks.json
- name: audit-keys
  secret:
    secretName: {{ include "zorgnet-hub.keysSecret" . }}
    defaultMode: 0400
    items:
      - key: keyring.json
        path: keyring.json
- name: var
  emptyDir:
    sizeLimit: 64Mi
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{- define "zorgnet-hub.volumeMounts" -}}
- name: database
  mountPath: /run/secrets/hub
  readOnly: true
- name: var
  mountPath: /var/lib/hub
- name: keys
  mountPath: /var/lib/hub/keys
  readOnly: true
- name: audit-keys
  mountPath: /var/lib/hub/audit-keys
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "zorgnet-hub.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "zorgnet-hub.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
