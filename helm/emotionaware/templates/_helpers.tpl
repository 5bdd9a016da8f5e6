{{/* Names, labels and shared fragments. */}}

{{- define "emotionaware.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "emotionaware.fullname" -}}
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

{{- define "emotionaware.triton" -}}{{ include "emotionaware.fullname" . | trunc 56 | trimSuffix "-" }}-triton{{- end -}}
{{- define "emotionaware.gateway" -}}{{ include "emotionaware.fullname" . | trunc 55 | trimSuffix "-" }}-gateway{{- end -}}

{{- define "emotionaware.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "emotionaware.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "emotionaware.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "emotionaware.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "triton"). */}}
{{- define "emotionaware.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emotionaware.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Pod security context shared by both components: non-root, default seccomp. */}}
{{- define "emotionaware.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "emotionaware.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The bucket scheme (s3 or gs), or "" when the source is not a bucket. */}}
{{- define "emotionaware.bucketScheme" -}}
{{- if eq .Values.triton.modelRepository.source "bucket" -}}
{{- if not .Values.triton.modelRepository.bucket.url -}}
{{- fail "triton.modelRepository.bucket.url is required when triton.modelRepository.source is bucket" -}}
{{- else if hasPrefix "s3://" .Values.triton.modelRepository.bucket.url -}}s3{{- else if hasPrefix "gs://" .Values.triton.modelRepository.bucket.url -}}gs{{- else -}}
{{- fail "triton.modelRepository.bucket.url must start with s3:// or gs://" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Bucket credentials for a container: s3 takes the Secret's keys as variables, gs a key file. */}}
{{- define "emotionaware.bucketEnv" -}}
{{- $scheme := include "emotionaware.bucketScheme" . -}}
{{- $secret := .Values.triton.modelRepository.bucket.credentialsSecret -}}
env:
  # Read-only root filesystem: cloud SDKs keep their caches under $HOME.
  - {name: HOME, value: /tmp}
  {{- if and (eq $scheme "gs") $secret }}
  - {name: GOOGLE_APPLICATION_CREDENTIALS, value: /var/secrets/gcs/gcs.json}
  {{- end }}
{{- if and (eq $scheme "s3") $secret }}
envFrom:
  - secretRef:
      name: {{ $secret }}
{{- end }}
{{- end -}}

{{/* Init container copying the repository out of the repository image into the "models" volume. */}}
{{- define "emotionaware.copyRepositoryInit" -}}
- name: copy-model-repository
  image: "{{ .Values.triton.modelRepository.image.repository }}:{{ .Values.triton.modelRepository.image.tag }}"
  imagePullPolicy: {{ .Values.triton.modelRepository.image.pullPolicy }}
  command: ["sh", "-c", "cp -R {{ .Values.triton.modelRepository.image.path }}/. /copy-to/"]
  securityContext:
    {{- include "emotionaware.containerSecurityContext" . | nindent 4 }}
  resources:
    requests: {cpu: 100m, memory: 64Mi}
    limits: {memory: 256Mi}
  volumeMounts:
    # Not /models: that is where the image keeps the repository.
    - {name: models, mountPath: /copy-to}
{{- end -}}
