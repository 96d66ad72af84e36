{{- define "rkms.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rkms.fullname" -}}
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

{{- define "rkms.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rkms.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rkms.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rkms.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rkms.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rkms.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rkms.secretName" -}}
{{- default (printf "%s-admin-token" (include "rkms.fullname" .)) .Values.adminToken.existingSecret -}}
{{- end -}}

{{/*
rkms.config is the rkms.yaml file: the user's config with the settings the pod layout decides
(listeners, token file, data dir) laid over it. Required values fail the render with a message.
*/}}
{{- define "rkms.config" -}}
{{- if and (not .Values.adminToken.value) (not .Values.adminToken.existingSecret) -}}
{{- fail "set adminToken.value or adminToken.existingSecret" -}}
{{- end -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $kms := default dict $cfg.kms -}}
{{- if not $kms.regions -}}
{{- fail "config.kms.regions must list your KMS regions and key ARNs" -}}
{{- end -}}
{{- if eq (default "aws" $kms.provider) "aws" -}}
{{- range $kms.regions -}}
{{- if not .key_id -}}
{{- fail (printf "config.kms.regions: region %v needs key_id (the KMS key ARN)" .name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "data_dir" "/var/lib/rkms" -}}
{{- $adm := default dict $cfg.admin -}}
{{- $_ := set $adm "listen" (printf "0.0.0.0:%d" (int .Values.service.admin)) -}}
{{- $_ := set $adm "grpc_listen" (printf "0.0.0.0:%d" (int .Values.service.keyApi)) -}}
{{- $_ := set $adm "token_file" "/etc/rkms/secret/admin-token" -}}
{{- $_ := set $cfg "admin" $adm -}}
{{- $ext := default dict $cfg.extproc -}}
{{- if and .Values.envoy.enabled (default dict $ext.tls).cert_file -}}
{{- fail "config.extproc.tls with envoy.enabled: the sidecar reaches ext_proc over the pod's loopback in plaintext; drop extproc.tls or the sidecar" -}}
{{- end -}}
{{- if .Values.envoy.enabled -}}
{{- /* The sidecar (the chart's ingress.yaml) makes every request's x-request-id itself. */ -}}
{{- if not (hasKey $ext "trust_request_id") -}}
{{- $_ := set $ext "trust_request_id" true -}}
{{- end -}}
{{- else -}}
{{- $src := include "rkms.extprocTLSSource" . -}}
{{- if ne $src "none" -}}
{{- if (default dict $ext.tls).cert_file -}}
{{- fail (printf "config.extproc.tls is set while extprocTLS.source is %s: set extprocTLS.source: none to use your own certificates" $src) -}}
{{- end -}}
{{- $_ := set $ext "tls" (dict "cert_file" "/etc/rkms/extproc-tls/tls.crt" "key_file" "/etc/rkms/extproc-tls/tls.key" "client_ca_file" "/etc/rkms/extproc-tls/ca.crt") -}}
{{- end -}}
{{- if and (not (default dict $ext.tls).client_ca_file) (not $ext.insecure) -}}
{{- fail "without the Envoy sidecar, ext_proc listens on the pod network and decrypts for whoever connects: keep extprocTLS.source (helm or cert-manager), or set config.extproc.tls (cert_file, key_file, client_ca_file: mutual TLS) or config.extproc.insecure: true" -}}
{{- end -}}
{{- end -}}
{{- $host := ternary "127.0.0.1" "0.0.0.0" .Values.envoy.enabled -}}
{{- $_ := set $ext "listen" (printf "%s:%d" $host (int .Values.service.extproc)) -}}
{{- $_ := set $cfg "extproc" $ext -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
rkms.adminScheme is the scheme of the kubelet's probes: HTTPS when the admin API serves TLS.
Mutual TLS on the admin listener would refuse the kubelet (it has no client certificate).
*/}}
{{- define "rkms.adminScheme" -}}
{{- $tls := default dict (default dict .Values.config.admin).tls -}}
{{- if $tls.client_ca_file -}}
{{- fail "config.admin.tls.client_ca_file (mutual TLS) would refuse the kubelet's /healthz and /readyz probes: use server TLS on the admin listener (cert_file, key_file) and mTLS on extproc" -}}
{{- end -}}
{{- ternary "HTTPS" "HTTP" (not (empty $tls.cert_file)) -}}
{{- end -}}

{{/*
rkms.extprocTLSSource is extprocTLS.source, checked: helm, cert-manager or none.
*/}}
{{- define "rkms.extprocTLSSource" -}}
{{- $src := default "helm" .Values.extprocTLS.source -}}
{{- if not (has $src (list "helm" "cert-manager" "none")) -}}
{{- fail (printf "extprocTLS.source %q: want helm, cert-manager or none" $src) -}}
{{- end -}}
{{- $src -}}
{{- end -}}

{{/*
rkms.extprocTLS is true when the chart provides ext_proc's certificates (no sidecar, source not none).
*/}}
{{- define "rkms.extprocTLS" -}}
{{- if and (not .Values.envoy.enabled) (ne (include "rkms.extprocTLSSource" .) "none") -}}true{{- end -}}
{{- end -}}

{{/*
rkms.extprocDNSNames are the names in rkms's ext_proc certificate: the Service's, and extprocTLS.dnsNames.
*/}}
{{- define "rkms.extprocDNSNames" -}}
{{- $full := include "rkms.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list $full (printf "%s.%s" $full $ns) (printf "%s.%s.svc" $full $ns) (printf "%s.%s.svc.cluster.local" $full $ns) -}}
{{- toJson (concat $names (default list .Values.extprocTLS.dnsNames)) -}}
{{- end -}}
