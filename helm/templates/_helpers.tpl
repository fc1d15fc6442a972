{{/* Names and labels shared by every template. */}}

{{- define "videocall.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "videocall.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include "videocall.selector" (list . "actix-api") */}}
{{- define "videocall.selector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "videocall.image" -}}
{{- $ := index . 0 -}}
{{- printf "%s/%s:%s" $.Values.image.repository (index . 1) (default $.Chart.AppVersion $.Values.image.tag) -}}
{{- end -}}

{{- define "videocall.secretName" -}}
{{- default (printf "%s-secrets" (include "videocall.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "videocall.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{- printf "tls://%s-nats:%d" (include "videocall.fullname" .) (int .Values.nats.clientPort) -}}
{{- else -}}
{{- required "nats.externalUrl is required when nats.enabled is false" .Values.nats.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose ca.crt the relays trust for NATS (empty: none). */}}
{{- define "videocall.natsCaSecret" -}}
{{- if .Values.nats.enabled -}}
{{- .Values.nats.tls.secretName | default (printf "%s-nats-tls" (include "videocall.fullname" .)) -}}
{{- else -}}
{{- .Values.nats.externalCaSecretName -}}
{{- end -}}
{{- end -}}

{{/* The relays' volume and mount of the NATS CA, when there is one. */}}
{{- define "videocall.natsCaVolume" -}}
{{- with include "videocall.natsCaSecret" . }}
- name: nats-ca
  secret:
    secretName: {{ . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "videocall.natsCaMount" -}}
{{- if include "videocall.natsCaSecret" . }}
- name: nats-ca
  mountPath: /etc/nats-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* The environment both relays share: the bus, the secret and the database. */}}
{{- define "videocall.relayEnv" -}}
- name: NATS_URL
  value: {{ include "videocall.natsUrl" . | quote }}
{{- if or .Values.nats.enabled .Values.nats.externalUser }}
- name: NATS_USER
  value: {{ ternary "relay" .Values.nats.externalUser .Values.nats.enabled | quote }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "videocall.secretName" . }}
      key: nats-password
{{- end }}
{{- if include "videocall.natsCaSecret" . }}
- name: NATS_TLS_CA
  value: /etc/nats-ca/ca.crt
{{- end }}
- name: TOKEN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "videocall.secretName" . }}
      key: token-secret
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "videocall.secretName" . }}
      key: database-url
- name: LOG_FORMAT
  value: json
{{- end -}}

{{- define "videocall.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "videocall.securityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}
